"""faust's Kafka consumer, delivering each fetch to a batch handler instead of one message at
a time.

Why: faust hands every record to its conductor as a message of its own (two tasks for
`wait_first`, an event, a queue put, a stream step and an ack per record), about 84 µs a
record on a 2-core machine (bench/faust_overhead.py), which alone capped the connector near
12,000 records/s with one event per record. The connector needs none of that per record: it
processes a batch and acknowledges it once the batch's effects are durable. This consumer
keeps everything else of faust's (the aiokafka thread, group membership and rebalancing, flow
control, the read-offset and gap bookkeeping, the acked-offset lists its commit loop commits
from) and replaces only the per-message delivery, for the topics that have a batch handler.
Records of any other topic still go through faust's own per-message path.

Batches are pipelined: while batch n finishes (its dataset append and Redis apply, mostly
waiting on the broker and Redis), the next fetch is filled and batch n+1 prepared (planned and
pre-checked, Python's CPU work), given batch n's prepared value so it can take n's markers and
stitches as recorded. Only one batch finishes at a time, in fetch order, so offsets are
acknowledged in order. Acknowledgement is the same contract faust's acks give: a batch's
offsets join faust's acked lists only after its `finish` returned, and `wait_empty` (which a
rebalance and a shutdown await before their final commit) also waits for the batch
finishing. A batch prepared while a rebalance began is dropped unfinished: the rebalance seeks
every partition back to its committed offset, so it is fetched and prepared again.

How a prepared batch then finishes, completes and is acknowledged, with at most
`batches_in_flight` in flight, is connector/batch_pipeline.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.futures import notify

from connector.batch_pipeline import BatchAbandonedError, BatchHandler, BatchPipeline
from connector.records import SourceRecord

_IDLE_FETCH_SECONDS = 1.0
# What the fetch loop may see while the app stops: cancelled fetches and batches.
_STOPPING_ERRORS: tuple[type[BaseException], ...] = (asyncio.CancelledError, BatchAbandonedError)


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with whole-fetch delivery to `BatchApp.batch_handlers`."""

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_init(self) -> None:
        super().on_init()
        self._batch_generation: int | None = None
        app: BatchApp = self.app  # type: ignore[assignment]
        self._pipeline = BatchPipeline(
            self._acknowledge, lambda: notify(self._waiting_for_ack), app.batches_in_flight
        )

    async def _drain_messages(self, fetcher: Any) -> None:  # faust's fetcher service
        """The fetch loop faust runs in its Fetcher service: fetch, deliver, repeat (the
        batch before still finishing meanwhile)."""
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                records = await self._fill(self._batch_limits())
                self._pipeline.raise_failure()  # what finishing or completing raised
                if records and not self.should_stop:
                    await self._deliver(records)
                await self.sleep(0)
        except _STOPPING_ERRORS + tuple(self.consumer_stopped_errors):
            if not self.transport.app.should_stop:
                raise  # stopping cancels the batches in flight: unacknowledged, replayed

    def _batch_limits(self) -> tuple[int, float]:
        app: BatchApp = self.app  # type: ignore[assignment]
        return app.batch_size, app.batch_seconds

    async def _fill(self, limits: tuple[int, float]) -> dict[TP, list[Any]]:
        """One batch: what the next fetch returns, topped up by further fetches until it
        holds `size` records or `seconds` have passed since its first record.

        A rebalance between two fetches makes faust seek every partition back to its
        committed offset, so what the batch held before it will be fetched again: it is
        dropped, and the batch starts over with the first fetch of the new generation
        (which the seek preceded, so none of it comes again)."""
        size, seconds = limits
        batch: dict[TP, list[Any]] = {}
        count, deadline, generation = 0, None, None
        while count < size and not self.should_stop:
            timeout = _IDLE_FETCH_SECONDS if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            records, active = await self._wait_next_records(timeout)
            if self.app.consumer_generation_id != generation:
                generation = self.app.consumer_generation_id
                batch, count, deadline = {}, 0, None
            count += _merge(batch, records or {}, active)
            if deadline is None:
                if not count:
                    break  # nothing yet: the caller checks for a stop before asking again
                deadline = time.monotonic() + seconds
        self._batch_generation = generation
        return batch

    async def _deliver(self, records: Mapping[TP, list[Any]]) -> None:
        """Prepare each topic's records, then start finishing them once the batch before
        has finished; they are acknowledged when their finish returns."""
        app: BatchApp = self.app  # type: ignore[assignment]
        generation = self._batch_generation
        if not self._current(generation):
            return  # a rebalance began after the last fetch: its seek brings these again
        by_topic: dict[str, list[tuple[TP, Any]]] = {}
        for tp, tp_records in records.items():
            fresh = await self._fresh(tp, tp_records)
            by_topic.setdefault(tp.topic, []).extend((tp, record) for record in fresh)
        for topic, pairs in by_topic.items():
            handler = app.batch_handlers.get(topic)
            if handler is None:
                await self._pipeline.ready()
                await self._deliver_one_by_one(pairs)
                continue
            sources = [_source(record) for _, record in pairs]
            prepared = await handler.prepare(sources, self._pipeline.in_flight(topic))
            await self._pipeline.ready()
            if not self._current(generation):
                return  # a rebalance began while preparing: its seek brings these again
            self._pipeline.start(topic, handler, prepared, pairs)

    def _current(self, generation: int | None) -> bool:
        """Whether records fetched in `generation` may still be processed."""
        app = self.app
        current = app.consumer_generation_id == generation
        return current and self.flow_active and not self.should_stop

    async def _fresh(self, tp: TP, records: list[Any]) -> list[Any]:
        """The records not read before, noting offset gaps (compaction, transaction markers)
        the way faust's own loop does, so its commit is not held back by them."""
        fresh = []
        for record in records:
            read = self._read_offset[tp]
            if read is None or record.offset >= read:
                if read and record.offset - read > 1:
                    await self._add_gap(tp, read + 1, record.offset)
                self._read_offset[tp] = record.offset
                fresh.append(record)
        if fresh:
            monitor = self.app.monitor
            monitor.track_tp_end_offset(tp, self.highwater(tp))
            # What a stream records when an event reaches it: faust's stall detector reads
            # it, and without it would report every partition as never processed.
            monitor.stream_inbound_time[tp] = time.monotonic()
        return fresh

    def _acknowledge(self, pairs: Iterable[tuple[TP, Any]]) -> None:
        """faust's `ack` bookkeeping for a handled batch, without a message object each."""
        assigned = self.assignment()
        for tp, record in pairs:
            committed = self._committed_offset[tp]
            offset = record.offset
            if tp not in assigned or (committed is not None and offset < committed):
                continue
            index = self._acked_index[tp]
            if offset not in index:
                index.add(offset)
                self._acked[tp].append(offset)
                self._n_acked += 1

    async def _deliver_one_by_one(self, pairs: list[tuple[TP, Any]]) -> None:
        """faust's own path, for topics no batch handler claims (none of the connector's)."""
        for tp, record in pairs:
            await self.wait_first(
                self.callback(self._to_message(tp, record)), self.suspend_flow.wait()
            )

    async def wait_empty(self) -> None:
        """Before a rebalance commits, the batch finishing finishes first, so its offsets are
        committed by this replica (a batch only prepared is dropped, see `_deliver`). A
        stopping consumer does not wait: the batch stays unacknowledged and the partition's
        next owner replays it (the ingest path makes a replay safe), so a shutdown is not held
        up by a batch retrying against a dead Redis."""
        idle = self._pipeline.idle
        while not idle.is_set() and not self.should_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), _IDLE_FETCH_SECONDS)
        await super().wait_empty()


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread, with the app's `fetch_max_wait_ms`.

    faust builds its aiokafka consumer with a fixed fetch_max_wait_ms of 1500. aiokafka
    leaves a partition out of its next fetch while records of it are still buffered, and
    sends one fetch per broker at a time; so while the fetch loop waits for the pipeline,
    the one fetch in flight may hold only idle partitions (the item and user topics), which
    the broker keeps for the whole wait, and the event partitions drained meanwhile are not
    fetched again until it returns: a stall of up to 1.5 s after each wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app: BatchApp = self.app  # type: ignore[assignment]
        consumer._fetch_max_wait_ms = app.fetch_max_wait_ms  # read when the consumer starts
        return consumer


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport, with `BatchConsumer` as its consumer."""

    Consumer: ClassVar[type[Any]] = BatchConsumer


class BatchApp(faust.App):
    """A faust app whose consumer delivers the topics in `batch_handlers` in whole batches.

    `batch_topic` registers a topic with faust (so the group subscribes to it and the
    assignor gives out its partitions) and its handler with the consumer."""

    def __init__(
        self,
        *args: Any,
        batch_size: int,
        batch_seconds: float,
        batches_in_flight: int = 2,
        fetch_max_wait_ms: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, broker_max_poll_records=batch_size, **kwargs)
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.batches_in_flight = batches_in_flight
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def batch_topic(self, topic: str, handler: BatchHandler) -> None:
        self.topics.add(self.topic(topic, key_serializer="raw", value_serializer="raw"))
        self.batch_handlers[topic] = handler

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)


def _merge(batch: dict[TP, list[Any]], records: Mapping[TP, list[Any]], active: Any) -> int:
    """Add `records` of the active partitions to `batch`; how many were added."""
    added = 0
    for tp, tp_records in records.items():
        if active is None or tp in active:
            batch.setdefault(tp, []).extend(tp_records)
            added += len(tp_records)
    return added


def _source(record: Any) -> SourceRecord:
    return SourceRecord(record.topic, record.partition, record.offset, record.key, record.value)
