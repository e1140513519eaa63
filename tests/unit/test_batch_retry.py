"""The connector's batch handler retries transient failures with exponential backoff capped at
30 s, and lets any other error through (the worker crashes for the orchestrator to restart).

docs/guarantees.md states this policy; the fault tests show the first retries against a real
broker, and this shows the cap, which an outage there would need minutes to reach. The
waits are recorded instead of slept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from connector import app
from connector.exceptions import KafkaUnavailableError, RedisUnavailableError
from connector.ingest.metadata import MetadataReport
from connector.ingest.processor import BatchReport
from connector.records import SourceRecord

RECORDS = [SourceRecord("g.events", 0, 0, b"k", b"{}")]


def failing(
    times: int, error: Exception
) -> tuple[list[int], Callable[[list[SourceRecord]], BatchReport]]:
    """A batch processor that raises `error` `times` times, then succeeds; and its calls."""
    calls: list[int] = []

    def process(records: list[SourceRecord]) -> BatchReport:
        calls.append(len(records))
        if len(calls) <= times:
            raise error
        return BatchReport(records=len(records), appended=1, dead=0, duplicates=0, stitched=0)

    return calls, process


def handle(process: Callable[[list[SourceRecord]], BatchReport]) -> None:
    """Run one batch step through the connector's retry policy to its end."""
    asyncio.run(app._retrying(process, RECORDS))


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def wait(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", wait)  # what connector.app awaits between tries
    return recorded


def test_transient_failures_are_retried_with_doubling_backoff_capped_at_30s(
    waits: list[float],
) -> None:
    calls, process = failing(9, KafkaUnavailableError("3 records unconfirmed, 0 failed: []"))
    handle(process)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert calls == [1] * 10  # the same whole batch each time, never skipped


def test_a_redis_outage_is_transient_too(waits: list[float]) -> None:
    calls, process = failing(2, RedisUnavailableError("Redis does not answer"))
    handle(process)
    assert (waits, len(calls)) == ([0.5, 1.0], 3)


def test_any_other_error_is_not_retried(waits: list[float]) -> None:
    calls, process = failing(1, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        handle(process)
    assert (waits, len(calls)) == ([], 1)


class FlakyEvents:
    """An event processor whose prepare, append, apply and list refresh each fail
    transiently, then succeed."""

    def __init__(self, prepare: int = 0, append: int = 0, apply: int = 0, lists: int = 0) -> None:
        self.failures = {"prepare": prepare, "append": append, "apply": apply, "lists": lists}
        self.calls: list[tuple[str, object]] = []

    def _attempt(self, step: str, argument: object) -> None:
        self.calls.append((step, argument))
        if self.failures[step]:
            self.failures[step] -= 1
            raise RedisUnavailableError("Redis does not answer")

    def prepare(self, records: list[SourceRecord], in_flight: object) -> str:
        self._attempt("prepare", in_flight)
        return f"prepared {len(records)}"

    def append(self, prepared: str) -> float:
        self._attempt("append", prepared)
        return 0.0

    def apply(self, prepared: str, appending: float) -> BatchReport:
        self._attempt("apply", prepared)
        return BatchReport(records=1, appended=1, dead=0, duplicates=0, stitched=0)

    def refresh_lists(self, batches: list[str]) -> int:
        self._attempt("lists", batches)
        return len(batches)


def test_the_events_handler_retries_each_step_with_the_batch_as_prepared(
    waits: list[float],
) -> None:
    """The pipelined handler retries preparing, recording and refreshing lists alike; each
    is retried with the batch as prepared, and the next batch is prepared given the one
    before it."""
    events = FlakyEvents(prepare=2, append=1, apply=2, lists=1)
    handler = app._events_handler("g.events", events)  # type: ignore[arg-type]
    assert handler.complete is not None

    async def run() -> None:
        first = await handler.prepare(RECORDS, None)
        await handler.finish(first)
        await handler.complete([first])  # type: ignore[misc]
        await handler.prepare(RECORDS, first)

    asyncio.run(run())
    assert waits == [0.5, 1.0, 0.5, 0.5, 1.0, 0.5]
    assert events.calls == [
        *[("prepare", None)] * 3,
        *[("append", "prepared 1")] * 2,
        *[("apply", "prepared 1")] * 3,
        *[("lists", ["prepared 1"])] * 2,
        ("prepare", "prepared 1"),
    ]


def test_a_batch_whose_redis_apply_fails_is_appended_once(waits: list[float]) -> None:
    """Issue 17: a Redis outage retried the whole batch, appending it to the Interactions
    dataset (and its dead letters) again on every retry."""
    events = FlakyEvents(apply=6)
    handler = app._events_handler("g.events", events)  # type: ignore[arg-type]

    async def run() -> None:
        await handler.finish(await handler.prepare(RECORDS, None))

    asyncio.run(run())
    steps = [step for step, _ in events.calls]
    assert (steps.count("append"), steps.count("apply")) == (1, 7)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


class FlakyMetadata:
    """An item or user processor whose Redis upsert fails `times` times."""

    def __init__(self, times: int) -> None:
        self.times, self.steps = times, []  # type: list[str]

    def append(self, records: list[SourceRecord]) -> str:
        self.steps.append("append")
        return "appended"

    def upsert(self, appended: str) -> MetadataReport:
        self.steps.append("upsert")
        if self.steps.count("upsert") <= self.times:
            raise RedisUnavailableError("Redis does not answer")
        return MetadataReport(records=1, upserted=1, dead=0)


def test_a_metadata_batch_whose_redis_upsert_fails_is_appended_once(waits: list[float]) -> None:
    processor = FlakyMetadata(times=3)
    handler = app._metadata_handler("g.items", processor)  # type: ignore[arg-type]

    async def run() -> None:
        await handler.finish(await handler.prepare(RECORDS, None))

    asyncio.run(run())
    assert processor.steps == ["append"] + ["upsert"] * 4
