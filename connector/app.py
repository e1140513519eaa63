"""The connector's faust application: one batch handler per input topic, handing each fetched
batch to the ingest path.

faust runs the consumer group, rebalancing, offset commits and the web pages; its consumer
(connector/batch_consumer.py) delivers whole fetches of up to `connector_batch_size` records
(or what arrived within `connector_batch_seconds` of the first) to the handler of their topic
instead of one message at a time, and marks them acknowledged only after the handler
returned, so faust commits an offset only once that record's effects are durable. The
handler processes a batch in worker threads: the event loop (and aiokafka's fetcher thread)
keep fetching while a batch waits on Redis and the broker; processing on the event loop left a
standing backlog of about 1.4 s at 2,000 events/s (docs/performance-log.md, Ingest). The
events handler is pipelined: it plans and pre-checks batch n+1 (`EventProcessor.prepare`) in
one thread while batch n's append and Redis apply (`append`, `apply`) wait in another.
Redis calls time out (STREAMREC_REDIS_SOCKET_TIMEOUT_SECONDS) instead of hanging. Transient
errors are retried with backoff; anything else crashes the worker for the orchestrator to
restart.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import faust
from prometheus_client import generate_latest

from connector import observability
from connector.batch_consumer import BatchApp
from connector.batch_pipeline import BatchHandler
from connector.ingest.metadata import MetadataProcessor
from connector.ingest.processor import BatchReport, EventProcessor, PreparedBatch
from connector.readiness import Readiness, redis_ping
from connector.records import SourceRecord
from connector.retry import TRANSIENT, Backoff
from connector.settings import ConnectorSettings
from connector.wiring import Processors

log = logging.getLogger(__name__)
BATCH_BACKOFF = Backoff(first=0.5, most=30.0)  # a batch is retried for as long as it takes
YOUNG_COLLECTION_ALLOCATIONS = 10_000  # Python's default is 700; see _collect_only_new_objects
T = TypeVar("T")


def create_app(settings: ConnectorSettings, processors: Processors) -> faust.App:
    """The faust app of one dataset group's connector, with its agents and web pages."""
    app = BatchApp(
        settings.consumer_group,
        batch_size=settings.connector_batch_size,
        batch_seconds=settings.connector_batch_seconds,
        batches_in_flight=settings.connector_batches_in_flight,
        fetch_max_wait_ms=settings.connector_fetch_max_wait_ms,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=True,  # faust creates only its own assignor topic; ours exist
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.connector_session_timeout_seconds,
        broker_heartbeat_interval=settings.connector_session_timeout_seconds / 10,
        web_port=settings.connector_web_port,
        web_host="0.0.0.0",  # noqa: S104 - a container's port is reached from outside it
        store="memory://",
    )
    topics = settings.topics
    app.batch_topic(topics.events, _events_handler(topics.events, processors.events))
    app.batch_topic(topics.items, _metadata_handler(topics.items, processors.items))
    app.batch_topic(topics.users, _metadata_handler(topics.users, processors.users))
    for topic, processor in processors.sources.items():
        if isinstance(processor, EventProcessor):
            app.batch_topic(topic, _events_handler(topic, processor))
        else:
            app.batch_topic(topic, _metadata_handler(topic, processor))

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(observability.REGISTRY), content_type="text/plain")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    _readiness_page(app, settings)
    app.task(_collect_only_new_objects)  # once the app has started
    return app


async def _collect_only_new_objects() -> None:
    """Leave what exists once the app has started (modules, faust's services, clients) out
    of every later garbage collection, and collect the youngest objects every 10,000
    allocations instead of 700: collections traversed the startup objects again and again
    while batches churn through objects, a cost paid per event (docs/performance.md,
    Ingest)."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, *gc.get_threshold()[1:])


def _readiness_page(app: faust.App, settings: ConnectorSettings) -> None:
    """/readyz: 200 once the group assigned this replica its partitions and Redis answers,
    503 with the reason before that, during a rebalance, or while Redis does not answer."""
    topics = settings.topics
    readiness = Readiness(
        (topics.events, topics.items, topics.users),
        redis_ping(settings.redis_url, settings.redis_options()),
    )

    def revoked(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        readiness.revoked()

    def assigned(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        readiness.assigned((tp.topic, tp.partition) for tp in args[0])  # the assigned set

    # faust awaits a receiver's result only when it is awaitable; these two return at once.
    app.on_partitions_revoked.connect(revoked)
    app.on_partitions_assigned.connect(assigned)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        verdict = await readiness.check()
        return web.json(verdict.body, status=verdict.status)


@dataclass
class _EventBatch:
    """An event batch through the handler's steps: prepared, how long preparing took, and
    the report of its recording once that is done."""

    prepared: PreparedBatch
    preparing: float
    report: BatchReport | None = None
    recording: float = 0.0


def _events_handler(topic: str, processor: EventProcessor) -> BatchHandler:
    """Event batches, pipelined in three steps: a batch is prepared (given the batch still
    being recorded, whose markers and stitches it takes as recorded) while the batch before
    is recorded (dataset append, Redis apply), which runs while the batches before that have
    their lists refreshed, together (batch_pipeline.py); each batch is acknowledged after
    its lists."""

    async def prepare(records: list[SourceRecord], in_flight: Any) -> Any:
        before = in_flight.prepared if in_flight is not None else None
        prepared, seconds = await _retrying(processor.prepare, records, before)
        return _EventBatch(prepared, seconds)

    async def finish(batch: _EventBatch) -> None:
        # Appended once, then applied: a Redis outage retries only the apply, so the
        # dataset and the dead letters get one copy of the batch however long it lasts.
        appending, _ = await _retrying(processor.append, batch.prepared)
        batch.report, applying = await _retrying(processor.apply, batch.prepared, appending)
        batch.recording = appending + applying

    async def complete(batches: list[_EventBatch]) -> None:
        prepared = [batch.prepared for batch in batches]
        refreshed, seconds = await _retrying(processor.refresh_lists, prepared)
        reports = [batch.report or BatchReport(0, 0, 0, 0, 0) for batch in batches]
        records = sum(report.records for report in reports) or len(batches)
        for batch, recorded in zip(batches, reports, strict=True):
            share = (recorded.records or records / len(batches)) / records  # of the refresh
            report = replace(recorded, lists_refreshed=round(refreshed * share))
            report.stages.update(prepare=batch.preparing, lists=seconds * share)
            observability.observe(topic, report, batch.preparing + batch.recording + seconds)

    return BatchHandler(prepare, finish, complete)


def _metadata_handler(topic: str, processor: MetadataProcessor) -> BatchHandler:
    """Batches of item or user records, which have nothing to prepare ahead: appended once,
    then upserted in Redis (retried apart, as event batches are)."""

    async def prepare(records: list[SourceRecord], in_flight: Any) -> Any:
        return records

    async def finish(records: Any) -> None:
        appended, appending = await _retrying(processor.append, records)
        report, upserting = await _retrying(processor.upsert, appended)
        observability.observe(topic, report, appending + upserting)

    return BatchHandler(prepare, finish)


async def _retrying(work: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`work(*args)` in a worker thread, retried with capped exponential backoff while it
    fails transiently; its result and how long the attempt that succeeded took."""
    delays = BATCH_BACKOFF.delays()
    while True:
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(work, *args)
        except TRANSIENT as exc:
            delay = next(delays)
            log.warning("batch failed, retrying", extra={"error": str(exc), "retry_in": delay})
            await asyncio.sleep(delay)
            continue
        return result, time.perf_counter() - started


def _credentials(settings: ConnectorSettings) -> Any:
    """aiokafka credentials equivalent to the librdkafka settings used elsewhere."""
    context = None
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
        if settings.kafka_ssl_certificate_location:
            password = settings.kafka_ssl_key_password
            context.load_cert_chain(
                settings.kafka_ssl_certificate_location,
                settings.kafka_ssl_key_location,
                password.get_secret_value() if password else None,
            )
    if settings.kafka_security_protocol.startswith("SASL"):
        secret = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=secret.get_secret_value() if secret else None,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None
