"""The order a topic's batches go through their steps once prepared: `finish` one batch at a
time in fetch order, then `complete` in the same order, then acknowledge.

At most `depth` batches are past preparing at any time: one finishing and, overlapping it,
those before it completing in order. A batch starts finishing only once the batch before it
has finished and fewer than `depth` batches are uncompleted, so a `complete` (the list
refresh) slower than arrivals slows the fetch loop instead of queueing finished batches
without bound, whose offsets would wait uncommitted and whose prepared values would pile up
in memory. While the refresh keeps up, several small batches may wait for it at once: held
to two, each batch gathered everything that arrived during a refresh, and its events waited
for two refreshes of that size (docs/performance-log.md, Serving). Pure asyncio:
connector/batch_consumer.py drives it from faust's fetch loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchHandler:
    """How a topic's batches are processed, in two or three steps.

    `prepare(records, in_flight)` may run while the batch before is still finishing, and is
    then given that batch's prepared value (else None); it must not write what a replay could
    not repeat. `finish(prepared)` runs for one batch at a time, in fetch order. `complete`
    (optional) runs after it, also one batch at a time in fetch order, and may overlap the
    next batch's `finish`. The batch is acknowledged once its last step returned. Each step
    retries transient errors itself."""

    prepare: Callable[[list[Any], Any], Awaitable[Any]]
    finish: Callable[[Any], Awaitable[None]]
    complete: Callable[[Any], Awaitable[None]] | None = None


@dataclass(frozen=True)
class _Batch:
    """A batch past preparing: its topic, prepared value, whether `finish` has returned
    (`finished`), the task that finishes, completes and acknowledges it, and that task of
    the batch before it."""

    topic: str
    prepared: Any
    finished: asyncio.Future[None]
    task: asyncio.Future[None]
    before: asyncio.Future[None] | None


class BatchPipeline:
    """Batches from `start` to `acknowledge(pairs)`, `depth` at most in flight (module doc);
    `settled()` is called whenever a batch's task ends, acknowledged or failed."""

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
        self._uncompleted: deque[asyncio.Future[None]] = deque()  # tasks, oldest first

    def in_flight(self, topic: str) -> Any:
        """The prepared value of the topic's batch still finishing, if one is."""
        newest = self._newest
        if newest is None or newest.topic != topic or newest.finished.done():
            return None  # what it wrote is in Redis: nothing to carry
        return newest.prepared

    async def ready(self) -> None:
        """Wait until a batch may start finishing: the newest has finished and fewer than
        `depth` batches are uncompleted. Raises what finishing raised. Shielded: the caller
        being cancelled cancels no batch."""
        newest = self._newest
        if newest is None:
            return
        await asyncio.shield(newest.finished)
        while self._pending() >= self._depth:
            await asyncio.shield(self._uncompleted[0])

    def _pending(self) -> int:
        """Batches started and not yet completed (they complete in order); raises what the
        oldest raised, and keeps raising it."""
        while self._uncompleted and self._uncompleted[0].done():
            _raise_if_failed(self._uncompleted[0])
            self._uncompleted.popleft()
        return len(self._uncompleted)

    def raise_failure(self) -> None:
        """Raise, without waiting, what finishing or completing a batch in flight raised."""
        newest = self._newest
        if newest is None:
            return
        for step in (newest.finished, *self._uncompleted):
            _raise_if_failed(step)

    def start(self, topic: str, handler: BatchHandler, prepared: Any, pairs: Any) -> None:
        """Start finishing a prepared batch; call after `ready()` returned."""
        self.idle.clear()
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        before = self._newest.task if self._newest is not None else None
        task = asyncio.ensure_future(self._run(handler, prepared, pairs, finished, before))
        self._newest = _Batch(topic, prepared, finished, task, before)
        self._uncompleted.append(task)

    async def _run(
        self,
        handler: BatchHandler,
        prepared: Any,
        pairs: Any,
        finished: asyncio.Future[None],
        before: asyncio.Future[None] | None,
    ) -> None:
        """finish, then (after the batch before has completed) complete, then acknowledge."""
        try:
            try:
                await handler.finish(prepared)
            except asyncio.CancelledError:
                finished.cancel()
                raise
            except Exception as exc:
                finished.set_exception(exc)  # raised by `ready` and `raise_failure`
                return
            finished.set_result(None)
            if before is not None:
                await asyncio.shield(before)  # batches complete and are acked in order
            if handler.complete is not None:
                await handler.complete(prepared)
            self._acknowledge(pairs)
        finally:
            newest = self._newest
            if newest is None or newest.task is asyncio.current_task():
                self.idle.set()  # no batch after this one is in flight
            self._settled()


def _raise_if_failed(step: asyncio.Future[None]) -> None:
    if step.done() and not step.cancelled():
        exc = step.exception()
        if exc is not None:
            raise exc
