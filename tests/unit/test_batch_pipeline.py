"""The batch pipeline's order: finish one at a time, complete in order (what finished during
a completion, together), acknowledge after complete, and never more than `depth` batches
past preparing (so a slow list refresh holds the fetch loop back instead of leaving
unacknowledged work and memory to pile up)."""

from __future__ import annotations

import asyncio

import pytest

from connector.batch_pipeline import BatchAbandonedError, BatchHandler, BatchPipeline


class Recorder:
    """A handler whose steps log when they start and end; `complete` is the slow step."""

    def __init__(self, complete_seconds: float, fail: tuple[str, int] | None = None) -> None:
        self.log: list[tuple[str, int]] = []
        self.calls: list[list[int]] = []  # the batches of each `complete` call
        self.complete_seconds = complete_seconds
        self.fail = fail

    async def finish(self, batch: int) -> None:
        self.log.append(("finish", batch))
        await asyncio.sleep(0.001)
        if self.fail == ("finish", batch):
            raise RuntimeError(f"finish {batch}")

    async def complete(self, batches: list[int]) -> None:
        self.calls.append(batches)
        self.log += [("complete", batch) for batch in batches]
        await asyncio.sleep(self.complete_seconds)
        for batch in batches:
            if self.fail == ("complete", batch):
                raise RuntimeError(f"complete {batch}")
        self.log += [("completed", batch) for batch in batches]

    def handler(self) -> BatchHandler:
        async def prepare(records: list[object], in_flight: object) -> object:
            return records

        return BatchHandler(prepare, self.finish, self.complete)


async def run_batches(
    recorder: Recorder, count: int, depth: int = 2
) -> tuple[BatchPipeline, list[int]]:
    """The consumer's loop: wait until ready, start the next batch; then wait until idle."""
    acknowledged: list[int] = []
    pipeline = BatchPipeline(lambda batch: acknowledged.append(batch), depth=depth)
    handler = recorder.handler()
    for batch in range(count):
        await pipeline.ready()
        recorder.log.append(("start", batch))
        pipeline.start("events", handler, batch, batch)
    await asyncio.wait_for(pipeline.idle.wait(), 5)
    return pipeline, acknowledged


@pytest.mark.parametrize("depth", [2, 4])
def test_a_batch_starts_only_when_fewer_than_depth_are_uncompleted(depth: int) -> None:
    recorder = Recorder(complete_seconds=0.02)
    _, acknowledged = asyncio.run(run_batches(recorder, 8, depth))
    assert acknowledged == list(range(8))
    log = recorder.log
    for batch in range(depth, 8):
        assert log.index(("completed", batch - depth)) < log.index(("start", batch)), log
    in_flight = 0
    most = 0
    for step, _ in log:
        in_flight += {"start": 1, "completed": -1}.get(step, 0)
        most = max(most, in_flight)
    assert most == depth  # the slow refresh holds the loop back, at `depth`


def test_a_depth_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        BatchPipeline(lambda batch: None, depth=1)


def test_the_next_batch_finishes_while_the_one_before_completes() -> None:
    recorder = Recorder(complete_seconds=0.05)
    asyncio.run(run_batches(recorder, 2))
    log = recorder.log
    assert log.index(("finish", 1)) < log.index(("completed", 0)), log


def test_a_failed_finish_is_raised_and_nothing_after_it_is_acknowledged() -> None:
    recorder = Recorder(complete_seconds=0.0, fail=("finish", 1))
    with pytest.raises(RuntimeError, match="finish 1"):
        asyncio.run(run_batches(recorder, 3))


def test_a_failed_completion_is_raised_without_waiting() -> None:
    async def scenario() -> list[int]:
        recorder = Recorder(complete_seconds=0.0, fail=("complete", 0))
        acknowledged: list[int] = []
        pipeline = BatchPipeline(lambda batch: acknowledged.append(batch))
        pipeline.start("events", recorder.handler(), 0, 0)
        await asyncio.wait_for(pipeline.idle.wait(), 5)
        with pytest.raises(RuntimeError, match="complete 0"):
            pipeline.raise_failure()
        return acknowledged

    assert asyncio.run(scenario()) == []


def test_batches_that_finish_during_a_completion_complete_together_in_order() -> None:
    recorder = Recorder(complete_seconds=0.05)
    _, acknowledged = asyncio.run(run_batches(recorder, 6, depth=4))
    assert acknowledged == list(range(6))
    assert [batch for call in recorder.calls for batch in call] == list(range(6))
    assert recorder.calls[0] == [0] and len(recorder.calls[1]) > 1, recorder.calls


def test_after_a_failed_completion_no_later_batch_is_completed() -> None:
    recorder = Recorder(complete_seconds=0.02, fail=("complete", 0))

    async def scenario() -> list[int]:
        pipeline, acknowledged = await run_batches(recorder, 4, depth=4)
        with pytest.raises(RuntimeError, match="complete 0"):
            pipeline.raise_failure()
        return acknowledged

    assert asyncio.run(scenario()) == []
    assert [batch for call in recorder.calls for batch in call] == [0]


def test_a_cancelled_completion_fails_its_batches_and_stops_completing() -> None:
    """A completion cancelled from inside (not by stopping the loop) must not pass for an
    acknowledgement: its batches and every later one fail with BatchAbandonedError."""

    async def scenario() -> tuple[list[int], list[list[int]]]:
        calls: list[list[int]] = []

        async def finish(batch: int) -> None:
            await asyncio.sleep(0.001)

        async def complete(batches: list[int]) -> None:
            calls.append(batches)
            raise asyncio.CancelledError

        async def prepare(records: list[object], in_flight: object) -> object:
            return records

        acknowledged: list[int] = []
        pipeline = BatchPipeline(lambda batch: acknowledged.append(batch), depth=4)
        handler = BatchHandler(prepare, finish, complete)
        pipeline.start("events", handler, 0, 0)
        await asyncio.wait_for(pipeline.idle.wait(), 5)
        with pytest.raises(BatchAbandonedError):
            pipeline.raise_failure()
        with pytest.raises(BatchAbandonedError):
            await pipeline.ready()  # the fetch loop stops here instead of going on
        return acknowledged, calls

    acknowledged, calls = asyncio.run(scenario())
    assert acknowledged == [] and calls == [[0]]


def test_an_acknowledgement_that_raises_fails_the_batch_and_those_after_it() -> None:
    async def scenario() -> list[int]:
        recorder = Recorder(complete_seconds=0.01)
        acknowledged: list[int] = []

        def acknowledge(batch: int) -> None:
            if batch == 1:
                raise RuntimeError("acknowledging 1")
            acknowledged.append(batch)

        pipeline = BatchPipeline(acknowledge, depth=4)
        for batch in range(4):
            await pipeline.ready()
            pipeline.start("events", recorder.handler(), batch, batch)
        await asyncio.wait_for(pipeline.idle.wait(), 5)
        with pytest.raises(RuntimeError, match="acknowledging 1"):
            pipeline.raise_failure()
        return acknowledged

    assert asyncio.run(scenario()) == [0]


def test_idle_waits_for_older_batches_when_the_newest_fails_to_finish() -> None:
    """A rebalance commits once the pipeline is idle: that must not happen while batches
    before a failed one still refresh their lists."""

    async def scenario() -> tuple[bool, list[int]]:
        recorder = Recorder(complete_seconds=0.2, fail=("finish", 1))
        acknowledged: list[int] = []
        pipeline = BatchPipeline(lambda batch: acknowledged.append(batch), depth=4)
        await pipeline.ready()
        pipeline.start("events", recorder.handler(), 0, 0)
        await pipeline.ready()
        pipeline.start("events", recorder.handler(), 1, 1)
        await asyncio.sleep(0.05)  # batch 1 has failed; batch 0 is still completing
        idle_early = pipeline.idle.is_set()
        await asyncio.wait_for(pipeline.idle.wait(), 5)
        return idle_early, acknowledged

    assert asyncio.run(scenario()) == (False, [0])
