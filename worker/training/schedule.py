"""`streamrec worker`: FULL retrains on a long period, UPDATEs on a short one, until stopped.

A stop request (SIGTERM from the orchestrator, or Ctrl-C) is honoured between steps: a run
in progress is abandoned before it publishes, so serving stays on the last complete version
and nothing half-written becomes current (the store's publish is all-or-nothing too).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from connector.exceptions import ModelNotFoundError, StreamrecError
from connector.memory import return_freed_memory
from connector.redis_client import connect
from worker import health
from worker.exceptions import NotEnoughDataError
from worker.settings import WorkerSettings
from worker.training.isolated import isolated_run
from worker.training.pipeline import Stopped
from worker.training.runs import Mode, run

log = logging.getLogger("streamrec.worker")


@dataclass
class Schedule:
    """When each mode is next due, in monotonic seconds."""

    full_every: float
    update_every: float
    next_full: float = 0.0  # a FULL right away when the worker starts
    next_update: float = 0.0

    @classmethod
    def starting(
        cls, full_every: float, update_every: float, now: float, run_now: bool = True
    ) -> Schedule:
        """The schedule of a worker starting at `now`: a FULL right away when `run_now`,
        otherwise each mode one interval from now (the model in Redis is fresh already)."""
        if run_now:
            return cls(full_every, update_every)
        return cls(full_every, update_every, now + full_every, now + update_every)

    def due(self, now: float) -> Mode | None:
        """The mode to run now, FULL first when both are due; None when neither is."""
        if now >= self.next_full:
            return "full"
        if now >= self.next_update:
            return "update"
        return None

    def done(self, mode: Mode, now: float) -> None:
        """Record a run (successful or not): a FULL also counts as an UPDATE."""
        self.next_update = now + self.update_every
        if mode == "full":
            self.next_full = now + self.full_every

    def wait(self, now: float) -> float:
        """Seconds until the next run is due."""
        return max(0.0, min(self.next_full, self.next_update) - now)


def serve(settings: WorkerSettings, runner: Callable[..., str] | None = None) -> None:
    """Run the schedule until SIGTERM or SIGINT, with /healthz, /readyz and /metrics on
    STREAMREC_WORKER_WEB_PORT; each run in a child process (worker/training/isolated.py) unless
    STREAMREC_WORKER_ISOLATED_RUNS is false or `runner` says otherwise."""
    if runner is None:
        runner = isolated_run if settings.worker_isolated_runs else run
    pages = health.serve_health(settings.worker_web_port, connect(settings))
    try:
        _loop(settings, runner)
    finally:
        pages.shutdown()


def _loop(settings: WorkerSettings, runner: Callable[..., str]) -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    schedule = Schedule.starting(
        settings.worker_full_interval_seconds,
        settings.worker_update_interval_seconds,
        time.monotonic(),
        settings.worker_run_on_start,
    )
    while not stop.is_set():
        mode = schedule.due(time.monotonic())
        if mode is None:
            stop.wait(schedule.wait(time.monotonic()))
            continue
        _run_once(runner, mode, settings, stop)
        schedule.done(mode, time.monotonic())
    log.info("worker stopped")


def _run_once(
    runner: Callable[..., str], mode: Mode, settings: WorkerSettings, stop: threading.Event
) -> None:
    """One run; its failure is logged and retried at the next due time, not fatal."""
    started, outcome = time.monotonic(), "published"
    try:
        runner(mode, settings, stop.is_set)
    except Stopped:
        outcome = "stopped"
        log.info("%s run abandoned: stop requested", mode)
    except (NotEnoughDataError, ModelNotFoundError) as exc:
        outcome = "skipped"
        log.warning("%s run skipped: %s", mode, exc)
    except StreamrecError as exc:
        outcome = "failed"
        log.error("%s run failed: %s", mode, exc)
    finally:
        health.record_run(mode, outcome, time.monotonic() - started)
        return_freed_memory()  # an in-process run's data and arrays are garbage now
