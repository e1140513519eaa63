"""Refreshing precomputed lists in a child process of the connector, beside ingest.

Refreshing a batch's lists is most of the connector's work per event (in bench/serve.py's
freshness phase, about 80% of each batch's append, apply and refresh;
docs/performance-log.md, Serving), and in one Python process it takes turns with ingest
under the GIL, so a single connector could use one core however many it had. In a child
process it runs on a core of its own: while the child ranks batch n's users, the
connector's own threads plan and pre-check batch n+1.

The batch still waits for its lists before it is acknowledged (`refresh` returns when the
child has written them), so what the in-process refresh promised holds unchanged: a batch's
lists reflect it once its offsets are committed, and a replayed batch refreshes them again.
The child builds its own ListRefresher (lists_setup.list_refresher) and so follows model versions
itself, refreshing every active list after a new one. If the child dies or stops answering,
the batch fails with ListRefreshUnavailableError (transient: the connector retries it with
backoff) and the next attempt starts a new child.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
import weakref
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

import redis

from connector.exceptions import ListRefreshUnavailableError, RedisUnavailableError
from connector.keys import Subject
from connector.serving.list_refresh import ListRefresher
from connector.settings import ConnectorSettings

log = logging.getLogger("streamrec.serving")
_SPAWN = multiprocessing.get_context("spawn")  # forking a process with threads is unsafe
_RETRY_IN_CHILD = (redis.ConnectionError, redis.TimeoutError, RedisUnavailableError)


class RefreshProcesses:
    """A ListRefresher's `refresh` answered by child processes, each batch's subjects split
    between them. The children start now, in the background, so that they follow model
    versions before the first batch arrives; the first one alone refreshes every active
    list after a new version (all of them would repeat that work)."""

    def __init__(
        self,
        settings: ConnectorSettings,
        processes: int,
        start_seconds: float,
        batch_seconds: float,
    ) -> None:
        self._settings = settings
        self._start_seconds, self._batch_seconds = start_seconds, batch_seconds
        self._lock = threading.Lock()  # one request at a time on the pipes
        self._slots: list[_Child | None] = [
            _Child.start(settings, n == 0) for n in range(processes)
        ]
        weakref.finalize(self, _stop_all, self._slots)

    def refresh(self, subjects: Iterable[Subject]) -> int:
        """Refresh the lists of `subjects` in the children; how many they wrote."""
        tags = list(dict.fromkeys(subject.tag for subject in subjects))
        if not tags:
            return 0
        with self._lock:
            answers, failures = self._exchange(_split(tags, len(self._slots)))
        if failures:
            raise ListRefreshUnavailableError(f"list refresh process failed: {failures[0]}")
        for kind, value in answers:
            if kind == "retry":
                raise ListRefreshUnavailableError(f"list refresh: {value}")
            if kind == "error":
                raise RuntimeError(f"list refresh process failed:\n{value}")
        return sum(value for _, value in answers if isinstance(value, int))

    def close(self) -> None:
        """Stop the children (they also stop by themselves when this process goes away)."""
        with self._lock:
            _stop_all(self._slots)

    def _exchange(self, chunks: list[list[str]]) -> tuple[list[tuple[str, object]], list[str]]:
        """Send each chunk to its child, then take every answer (also from the children
        that answer when another failed, so no answer is left for the next batch to read);
        a child that fails is stopped, and started again by the next batch."""
        sent, answers, failures = [], [], []
        for n, chunk in enumerate(chunks):
            try:
                child = self._running(n)
                child.connection.send(chunk)
                sent.append((n, child))
            except (ListRefreshUnavailableError, OSError) as exc:
                failures.append(str(exc))
                self._stop(n)
        deadline = time.monotonic() + self._batch_seconds
        for n, child in sent:
            try:
                if not child.connection.poll(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no answer within {self._batch_seconds:g} s")
                answers.append(child.connection.recv())
            except (EOFError, OSError, TimeoutError) as exc:
                failures.append(str(exc))
                self._stop(n)
        return answers, failures

    def _running(self, n: int) -> _Child:
        """Child `n`, started (again) if need be and waited for until it is ready."""
        child = self._slots[n]
        if child is None:
            child = self._slots[n] = _Child.start(self._settings, n == 0)
        if not child.ready:
            try:
                ready = child.connection.poll(self._start_seconds)
                message = child.connection.recv() if ready else None
            except (EOFError, OSError) as exc:
                message = ("error", str(exc))
            if message != ("ready", None):
                self._stop(n)
                raise ListRefreshUnavailableError(f"list refresh process did not start: {message}")
            child.ready = True
        return child

    def _stop(self, n: int) -> None:
        child, self._slots[n] = self._slots[n], None
        if child is not None:
            child.stop()


class _Child:
    """A child process and this end of its pipe."""

    def __init__(self, process: Any, connection: Connection) -> None:
        self.process, self.connection = process, connection
        self.ready = False  # it said it is, after loading the current model version

    @classmethod
    def start(cls, settings: ConnectorSettings, follows_versions: bool) -> _Child:
        ours, theirs = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_serve,
            args=(settings, theirs, follows_versions),
            name="lists-refresh",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child's end: our recv sees EOF once the child is gone
        return cls(process, ours)

    def stop(self) -> None:
        self.connection.close()  # the child sees EOF and returns
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def _stop_all(slots: list[_Child | None]) -> None:
    for n, child in enumerate(slots):
        slots[n] = None
        if child is not None:
            child.stop()


def _split(tags: list[str], parts: int) -> list[list[str]]:
    """`tags` in at most `parts` contiguous chunks of nearly equal size, none empty."""
    size = -(-len(tags) // parts)
    return [tags[start : start + size] for start in range(0, len(tags), size)]


def _serve(settings: ConnectorSettings, connection: Connection, follows_versions: bool) -> None:
    """The child: refresh the lists of the tags each request names, until the parent's end
    of the pipe closes."""
    from connector import logs, redis_client
    from connector.serving import lists_setup

    logs.configure(verbose=False)
    try:
        client = redis_client.connect(settings)
        refresher = lists_setup.list_refresher(settings, client, follows_versions)
    except Exception as exc:  # reported to the parent, which fails the batch with it
        answer: tuple[str, object] = ("error", f"{type(exc).__name__}: {exc}")
    else:
        answer = ("ready", None)
    with contextlib.suppress(EOFError, OSError):  # the parent is gone: nothing to answer
        connection.send(answer)
        while answer[0] == "ready":
            connection.send(_answer(refresher, connection.recv()))


def _answer(refresher: ListRefresher, tags: list[str]) -> tuple[str, object]:
    try:
        return "done", refresher.refresh(Subject.from_tag(tag) for tag in tags)
    except _RETRY_IN_CHILD as exc:
        return "retry", str(exc)
    except Exception as exc:
        log.exception("list refresh failed")
        return "error", f"{type(exc).__name__}: {exc}"
