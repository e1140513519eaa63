"""When `streamrec worker` runs FULL and UPDATE."""

from __future__ import annotations

from worker.schedule import Schedule


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
