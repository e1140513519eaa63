"""When `streamrec worker` runs FULL and UPDATE."""

from __future__ import annotations

from worker.training.schedule import Schedule


def test_full_first_then_updates_between_fulls() -> None:
    schedule = Schedule(full_every=100.0, update_every=10.0)
    assert schedule.due(0.0) == "full"
    schedule.done("full", 0.0)
    assert schedule.due(5.0) is None and schedule.wait(5.0) == 5.0
    assert schedule.due(10.0) == "update"
    schedule.done("update", 10.0)
    assert schedule.due(19.0) is None
    assert schedule.due(100.0) == "full"  # both due: FULL wins, and counts as an update too
    schedule.done("full", 100.0)
    assert schedule.due(105.0) is None and schedule.wait(105.0) == 5.0


def test_a_worker_started_after_a_full_waits_an_interval_for_each_mode() -> None:
    # STREAMREC_WORKER_RUN_ON_START=false, as `streamrec demo` starts it after its own FULL
    schedule = Schedule.starting(full_every=100.0, update_every=10.0, now=50.0, run_now=False)
    assert schedule.due(50.0) is None and schedule.wait(50.0) == 10.0
    assert schedule.due(60.0) == "update"
    schedule.done("update", 60.0)
    assert schedule.due(65.0) is None
    assert schedule.due(149.0) == "update" and schedule.due(150.0) == "full"


def test_a_worker_started_by_default_runs_a_full_right_away() -> None:
    assert Schedule.starting(100.0, 10.0, now=50.0).due(50.0) == "full"
