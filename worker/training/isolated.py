"""A worker run in a child process of its own, so that its memory goes back when it ends.

A run holds the whole Interactions dataset and the training arrays, and `streamrec worker`
runs one every few minutes for as long as it is deployed. In one process, what the runs
left behind (freed but still mapped by the allocator) grew with the dataset: about 9.4 MiB
per 100,000 rows after each run in the soak (docs/performance-log.md, Load and soak),
although the process hands freed memory back between runs. In a spawned child that exits,
all of it goes back to the operating system; the worker's own process keeps only the
schedule, /healthz and /metrics. A child that dies (the kernel's OOM killer picks the
largest process, the run's) fails that run, and the schedule tries again at the next due
time.

The parent stays in charge of stopping: the child ignores SIGINT and SIGTERM, checks a
shared event between steps (raising Stopped as `run` does), and stops as well when the
worker's process is gone. Errors come back by kind and message, so the schedule logs and
counts them as it did in one process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from connector.exceptions import ModelNotFoundError, StreamrecError
from worker.exceptions import NotEnoughDataError, WorkerError
from worker.settings import WorkerSettings
from worker.training.pipeline import Stopped
from worker.training.runs import Mode, run

_SPAWN = multiprocessing.get_context("spawn")  # the worker serves pages from threads
_POLL_SECONDS = 0.5  # how often the parent looks for a stop request while a run goes on
# What an error raised in the child is raised as here, by its kind (the first match).
_KINDS: tuple[tuple[str, type[Exception]], ...] = (
    ("stopped", Stopped),
    ("not-enough-data", NotEnoughDataError),
    ("no-model", ModelNotFoundError),
    ("worker", WorkerError),
    ("streamrec", StreamrecError),
)


class RunProcessError(WorkerError):
    """The run's child process ended without an answer (killed, or out of memory)."""


def isolated_run(mode: Mode, settings: WorkerSettings, should_stop: Callable[[], bool]) -> str:
    """`run(mode, settings, should_stop)` in a spawned child; the published version's id."""
    ours, theirs = _SPAWN.Pipe()
    stopping = _SPAWN.Event()
    level = logging.getLogger().level
    child = _SPAWN.Process(
        target=_child,
        args=(mode, settings, theirs, stopping, level, os.getpid()),
        name=f"streamrec-{mode}",
    )
    child.start()
    theirs.close()  # the child's end: our recv sees EOF once the child is gone
    try:
        return _answer(_wait(ours, child, stopping, should_stop))
    finally:
        ours.close()
        child.join()


def _wait(
    connection: Connection,
    child: Any,
    stopping: Any,
    should_stop: Callable[[], bool],
) -> tuple[str, str]:
    """The child's answer, asking it to stop once `should_stop()` turns true. A child that
    dies closes its end of the pipe, which ends the wait too (recv then raises EOFError)."""
    while not connection.poll(_POLL_SECONDS):
        if should_stop():
            stopping.set()
    try:
        answer: tuple[str, str] = connection.recv()
    except EOFError as exc:
        child.join()
        raise RunProcessError(f"the run's process ended with exit code {child.exitcode}") from exc
    return answer


def _answer(answer: tuple[str, str]) -> str:
    kind, text = answer
    if kind == "published":
        return text
    for name, error in _KINDS:
        if kind == name:
            raise error(text)
    raise RunProcessError(f"the run failed: {text}")


def _child(
    mode: Mode,
    settings: WorkerSettings,
    connection: Connection,
    stopping: Any,
    level: int,
    parent: int,
) -> None:
    """The child: one run, its outcome sent back as (kind, text)."""
    from connector import logs

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the parent decides when to stop
    logs.configure(verbose=level <= logging.INFO)

    def should_stop() -> bool:
        return stopping.is_set() or os.getppid() != parent

    try:
        outcome = ("published", run(mode, settings, should_stop))
    except Exception as exc:  # noqa: BLE001 - every outcome goes back to the parent
        outcome = (_kind(exc), str(exc))
        if outcome[0] == "error":
            logging.getLogger("streamrec.worker").exception("%s run failed", mode)
    connection.send(outcome)
    connection.close()


def _kind(exc: Exception) -> str:
    for name, error in _KINDS:
        if isinstance(exc, error):
            return name
    return "error"
