"""The order a topic's batches go through their steps once prepared: `finish` one batch at a
time in fetch order, then `complete`, then acknowledge, in the same order.

Batches that finished while the completion before them ran are completed together, in one
call: `complete` (the list refresh) is given every such batch of the same handler, oldest
first. Refreshing each batch's users in a call of its own let batches queue behind one
another once the refresh neared saturation, each event then waiting for every refresh ahead
of it; together, an event waits for at most the refresh running when it finished and the
one that takes it (docs/performance-log.md, Serving).

At most `depth` batches are past preparing at any time. A batch starts finishing only once
the batch before it has finished and fewer than `depth` batches are uncompleted, so a
`complete` slower than arrivals slows the fetch loop instead of queueing finished batches
without bound, whose offsets would wait uncommitted and whose prepared values would pile up
in memory. Pure asyncio: connector/batch_consumer.py drives it from faust's fetch loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


class BatchAbandonedError(RuntimeError):
    """A batch's finish or completion was cancelled before it returned: the batch is not
    acknowledged, and no batch after it is completed (the consumer restarts from the
    committed offsets)."""


@dataclass(frozen=True)
class BatchHandler:
    """How a topic's batches are processed, in two or three steps.

    `prepare(records, in_flight)` may run while the batch before is still finishing, and is
    then given that batch's prepared value (else None); it must not write what a replay could
    not repeat. `finish(prepared)` runs for one batch at a time, in fetch order. `complete`
    (optional) runs after it, for one or more finished batches at a time (their prepared
    values, oldest first), in fetch order, and may overlap the next batch's `finish`. A
    batch is acknowledged once its last step returned. Each step retries transient errors
    itself."""

    prepare: Callable[[list[Any], Any], Awaitable[Any]]
    finish: Callable[[Any], Awaitable[None]]
    complete: Callable[[list[Any]], Awaitable[None]] | None = None


@dataclass(frozen=True)
class _Batch:
    """A batch past preparing: its topic, handler, prepared value and offsets, whether
    `finish` has returned (`finished`), and whether it is acknowledged (`done`)."""

    topic: str
    handler: BatchHandler
    prepared: Any
    pairs: Any
    finished: asyncio.Future[None]
    done: asyncio.Future[None]


class BatchPipeline:
    """Batches from `start` to `acknowledge(pairs)`, `depth` at most in flight (module doc);
    `settled()` is called whenever a batch is acknowledged or fails."""

    def __init__(
        self,
        acknowledge: Callable[[Any], None],
        settled: Callable[[], None] = lambda: None,
        depth: int = 2,
    ) -> None:
        if depth < 2:
            raise ValueError(f"depth must be at least 2 (one finishing, one completing): {depth}")
        self._acknowledge = acknowledge
        self._settled = settled
        self._depth = depth
        self.idle = asyncio.Event()  # set while no batch is in flight
        self.idle.set()
        self._newest: _Batch | None = None
        self._uncompleted: deque[_Batch] = deque()  # started, not yet acknowledged; oldest first
        self._finished: deque[_Batch] = deque()  # finished, waiting for `complete`
        self._completer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # each batch's finish, kept referenced
        self._failure: Exception | None = None  # what a completion raised: later batches
        # are failed with it, not completed after a batch that was not

    def in_flight(self, topic: str) -> Any:
        """The prepared value of the topic's batch still finishing, if one is."""
        newest = self._newest
        if newest is None or newest.topic != topic or newest.finished.done():
            return None  # what it wrote is in Redis: nothing to carry
        return newest.prepared

    async def ready(self) -> None:
        """Wait until a batch may start finishing: the newest has finished and fewer than
        `depth` batches are uncompleted. Raises what finishing or completing raised.
        Shielded: the caller being cancelled cancels no batch."""
        newest = self._newest
        if newest is None:
            return
        await asyncio.shield(newest.finished)
        while self._pending() >= self._depth:
            await asyncio.shield(self._uncompleted[0].done)

    def _pending(self) -> int:
        """Batches started and not yet acknowledged (they are acknowledged in order); raises
        what the oldest raised, and keeps raising it."""
        while self._uncompleted and self._uncompleted[0].done.done():
            _raise_if_failed(self._uncompleted[0].done)
            self._uncompleted.popleft()
        return len(self._uncompleted)

    def raise_failure(self) -> None:
        """Raise, without waiting, what finishing or completing a batch in flight raised."""
        newest = self._newest
        if newest is None:
            return
        _raise_if_failed(newest.finished)
        for batch in self._uncompleted:
            _raise_if_failed(batch.done)

    def start(self, topic: str, handler: BatchHandler, prepared: Any, pairs: Any) -> None:
        """Start finishing a prepared batch; call after `ready()` returned."""
        self.idle.clear()
        loop = asyncio.get_running_loop()
        batch = _Batch(topic, handler, prepared, pairs, loop.create_future(), loop.create_future())
        self._newest = batch
        self._uncompleted.append(batch)
        task = asyncio.ensure_future(self._finish(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, batch: _Batch) -> None:
        """finish, then queue the batch for the completer."""
        try:
            await batch.handler.finish(batch.prepared)
        except asyncio.CancelledError:
            batch.finished.cancel()
            self._fail(batch, BatchAbandonedError("a batch's finish was cancelled"))
            raise
        except Exception as exc:
            batch.finished.set_exception(exc)  # raised by `ready` and `raise_failure`
            self._fail(batch, exc)
            return
        batch.finished.set_result(None)
        if self._failure is not None:
            self._fail(batch, self._failure)
            return
        self._finished.append(batch)
        if self._completer is None or self._completer.done():
            self._completer = asyncio.ensure_future(self._complete_finished())

    async def _complete_finished(self) -> None:
        """Complete what has finished, oldest first: each run of consecutive batches of one
        handler in one `complete` call, then acknowledge them in order; until none is left."""
        while self._finished:
            group = _leading_run(self._finished)
            complete = group[0].handler.complete
            try:
                if complete is not None:
                    await complete([batch.prepared for batch in group])
                for batch in group:
                    self._acknowledge(batch.pairs)
                    self._settle(batch, None)
            except BaseException as exc:
                failure = (
                    exc
                    if isinstance(exc, Exception) and not isinstance(exc, asyncio.CancelledError)
                    else BatchAbandonedError(f"a batch's completion ended by {exc!r}")
                )
                self._stop_completing(group, failure)
                if not isinstance(exc, Exception):
                    raise  # cancellation, KeyboardInterrupt, SystemExit: not ours to keep
                return  # raised through `ready` and `raise_failure`

    def _stop_completing(self, group: list[_Batch], failure: Exception) -> None:
        """Fail `group`'s batches not yet acknowledged and every batch waiting to complete;
        batches still finishing fail as they finish."""
        self._failure = failure
        for batch in (*group, *self._finished):
            if not batch.done.done():
                self._fail(batch, failure)
        self._finished.clear()

    def _fail(self, batch: _Batch, exc: Exception) -> None:
        self._settle(batch, exc)
        _retrieved(batch.finished)
        _retrieved(batch.done)

    def _settle(self, batch: _Batch, exc: Exception | None) -> None:
        if not batch.done.done():
            if exc is None:
                batch.done.set_result(None)
            else:
                batch.done.set_exception(exc)
        if all(started.done.done() for started in self._uncompleted):
            self.idle.set()  # every batch started is acknowledged or failed
        self._settled()


def _leading_run(finished: deque[_Batch]) -> list[_Batch]:
    """Take the oldest finished batch and every one after it with the same handler."""
    group = [finished.popleft()]
    while finished and finished[0].handler is group[0].handler:
        group.append(finished.popleft())
    return group


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a failed future's exception as seen: it is raised through `ready` or
    `raise_failure` once, not logged again when the future is collected."""
    if future.done() and not future.cancelled():
        future.exception()


def _raise_if_failed(step: asyncio.Future[None]) -> None:
    if step.done() and not step.cancelled():
        exc = step.exception()
        if exc is not None:
            raise exc
