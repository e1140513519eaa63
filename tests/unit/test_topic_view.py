"""The Rereader reloads off the hot path, at most once per interval, never twice at once."""

from __future__ import annotations

import threading
import time

from connector.topic_view import Rereader


def test_first_read_is_synchronous_later_ones_in_the_background() -> None:
    calls: list[str] = []
    release = threading.Event()

    def reload() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) > 1:
            release.wait(5)

    refresher = Rereader(reload, interval=0.0)
    refresher.in_background_if_stale()
    assert calls == [threading.current_thread().name]
    time.sleep(0.01)
    started = time.perf_counter()
    refresher.in_background_if_stale()  # stale: starts a thread and returns at once
    refresher.in_background_if_stale()  # one is running: no second thread
    assert time.perf_counter() - started < 0.5
    release.set()
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert len(calls) == 2 and calls[1] != calls[0]


def test_reloads_at_most_once_per_interval() -> None:
    calls: list[int] = []
    refresher = Rereader(lambda: calls.append(1), interval=60.0)
    for _ in range(5):
        refresher.if_stale()
        refresher.in_background_if_stale()
    assert len(calls) == 1
    refresher.now()
    assert len(calls) == 2


def test_a_failed_background_reload_leaves_the_view_and_retries_later() -> None:
    outcomes = iter([None, RuntimeError("broker down"), None])
    calls: list[int] = []

    def reload() -> None:
        calls.append(1)
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    refresher = Rereader(reload, interval=0.0)
    refresher.in_background_if_stale()
    for _ in range(2):
        time.sleep(0.01)
        refresher.in_background_if_stale()
        deadline = time.monotonic() + 5
        while refresher._lock.locked() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) == 3
