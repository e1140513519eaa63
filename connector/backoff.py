"""The waits between tries of something that failed transiently (connector/retry.py says
which failures are): capped exponential by default, optionally a fixed number of tries or a
deadline. No dependencies, so any module may use it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits of `first` seconds, times `factor` after each try, at most `most`; `tries` ends
    the series after that many waits, `seconds` once that much time has passed since the
    series began (None: no end)."""

    first: float
    most: float
    factor: float = 2.0
    tries: int | None = None
    seconds: float | None = None

    def delays(self) -> Iterator[float]:
        """The waits, one per failed try, until the series ends; the series begins now."""
        deadline = None if self.seconds is None else time.monotonic() + self.seconds
        return self._series(deadline)

    def _series(self, deadline: float | None) -> Iterator[float]:
        delay, given = self.first, 0
        while self.tries is None or given < self.tries:
            if deadline is not None and time.monotonic() >= deadline:
                return
            yield delay
            given += 1
            delay = min(delay * self.factor, self.most)
