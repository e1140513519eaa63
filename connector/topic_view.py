"""In-memory views of compacted Kafka logs (schemas, trackers, filters, sources), kept fresh
without stalling the hot path.

`TopicView` is what the views share: the offset read up to, reading what was appended
since, and writing under the log's exclusive lock after re-reading (check, then append).
Each view says how a record changes it (`_apply`); `GroupEntries` does that for views of
one group's named entries (filters, sources).

Re-reading a log costs a consumer round trip (about 130 ms on the development machine),
which the ingest path must not pay inline every few seconds. A `Rereader` runs the re-read in
a background thread when the view is older than its interval, while callers keep using the
view they have; the first read, when there is no view yet, is synchronous.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from connector.exceptions import StreamrecError
from connector.kafka_log import CompactedLog, LogRecord, LogWriter

log = logging.getLogger(__name__)
Entry = TypeVar("Entry")


class Rereader:
    """Runs `reload` at most once per `interval` seconds, never two at once."""

    def __init__(self, reload: Callable[[], None], interval: float) -> None:
        self._reload = reload
        self._interval = interval
        self._lock = threading.Lock()
        self._last: float | None = None

    def now(self) -> None:
        """Reload synchronously (waiting for a background reload in progress to finish)."""
        with self._lock:
            self._run_locked()

    def if_stale(self) -> None:
        """Reload synchronously if the view is older than the interval (or was never read)."""
        if self._stale():
            self.now()

    def in_background_if_stale(self) -> None:
        """Start a background reload if the view is stale; the first read is synchronous."""
        if self._last is None:
            self.now()
        elif self._stale() and self._lock.acquire(blocking=False):
            threading.Thread(target=self._background, daemon=True).start()

    def _background(self) -> None:
        try:
            self._run_locked()
        except Exception:  # the view stays as it was; the next call tries again
            log.warning("background re-read failed", exc_info=True)
        finally:
            self._lock.release()

    def _run_locked(self) -> None:
        self._last = time.monotonic()
        self._reload()

    def _stale(self) -> bool:
        return self._last is None or time.monotonic() - self._last > self._interval


class TopicView:
    """The in-memory view of one compacted log, re-read every `interval` seconds at most on
    hot paths (`reread_if_stale`) and on demand (`reread`)."""

    def __init__(self, log: CompactedLog, interval: float) -> None:
        self._log = log
        self._next_offset = 0
        self._rereader = Rereader(self._read_new, interval)

    def reread(self) -> None:
        """Read what was appended since the last read."""
        self._rereader.now()

    def reread_if_stale(self) -> None:
        """For hot paths: re-read in the background when stale (the first read waits)."""
        self._rereader.in_background_if_stale()

    def _read_new(self) -> None:
        for record in self._log.read_from(self._next_offset):
            self._apply(record)
            self._next_offset = record.offset + 1

    def _apply(self, record: LogRecord) -> None:
        """Change the view by one record read from the log, in offset order."""
        raise NotImplementedError

    @contextmanager
    def _exclusive(self) -> Iterator[LogWriter]:
        """The log's writer, held against other writers, with the view re-read under it, so
        what is checked before appending is the log as it stands."""
        with self._log.exclusive() as writer:
            self.reread()
            yield writer

    def _appended(self, offset: int) -> None:
        """Note an append of this process's own (the view already holds its effect)."""
        self._next_offset = max(self._next_offset, offset + 1)


class GroupEntries(TopicView, Generic[Entry]):
    """A TopicView of named entries of one dataset group, keyed `<group>/<name>` with a
    tombstone on delete (filters, sources): each view says how a value is read (`_read`);
    a value it cannot read is left out and logged, so it cannot take the others down."""

    def __init__(self, log: CompactedLog, group: str, interval: float) -> None:
        super().__init__(log, interval)
        self._group = group
        self._by_name: dict[str, Entry] = {}

    def _apply(self, record: LogRecord) -> None:
        prefix = f"{self._group}/"
        if not record.key.startswith(prefix):
            return
        name = record.key[len(prefix) :]
        self._by_name.pop(name, None)
        if record.value is None:
            return
        try:
            self._by_name[name] = self._read(name, record.value)
        except (StreamrecError, ValueError, KeyError) as exc:
            log.warning("%r of group %r is left out: %s", name, self._group, exc)

    def _read(self, name: str, value: bytes) -> Entry:
        """The entry a stored value holds; raises what makes it unreadable."""
        raise NotImplementedError

    def _key(self, name: str) -> str:
        return f"{self._group}/{name}"
