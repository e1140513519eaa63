"""HTTP intake: Personalize's PutEvents, PutItems and PutUsers (`POST /events`, `/items`,
`/users`), published to the dataset group's topics (docs/api.md, "Sending events over HTTP").

A request is checked (put_requests.py: what Personalize refuses at once is answered 400 and
nothing is published), published with an idempotent producer, and answered 200 only once the
broker has every record; the connector then treats the records as any producer's. A retried
request publishes its records again; the connector drops those of its events that repeat
an eventId (or, without one, the same content), as for any retried producer. Requests
beyond STREAMREC_API_INTAKE_REQUESTS_PER_SECOND get 429 (ThrottlingException), which the
AWS SDKs retry with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from connector.api import ApiRequestError, put_requests
from connector.api.publisher import Publisher
from connector.api.settings import ApiSettings
from connector.exceptions import SchemaNotFoundError
from connector.registry.registry import open_registry
from connector.registry.rules import DatasetSchema
from connector.registry.schema import SchemaRegistry
from connector.trackers import TrackerStore, open_trackers

log = logging.getLogger("streamrec.api")
# How long a tracking id and schema looked up serve requests: a new tracker or schema version
# takes effect within this (the views themselves re-read every few seconds).
LOOKUP_SECONDS = 1.0
BodyReader = Callable[[web.Request], Any]


class ThrottledError(ApiRequestError):
    """More intake requests than the API takes a second (HTTP 429, ThrottlingException)."""

    status = 429


class RateLimit:
    """A token bucket: `rate` requests a second, and bursts of up to a second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._clock = rate, clock
        self._burst = max(rate, 1.0)  # a rate below one a second still lets one through
        self._tokens, self._at = self._burst, clock()

    def take(self) -> None:
        """Spend one request's token, or raise ThrottledError when none is left."""
        if self._rate <= 0:
            return
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            raise ThrottledError(
                f"more than {self._rate:g} intake requests a second: retry with backoff"
            )
        self._tokens -= 1


class _Intake:
    """What the intake routes share: the producer and the trackers' and schemas' views,
    opened in the background when the app starts, so that the first requests do not each
    wait for the topics to be read, and an API that takes no events pays nothing per
    request for them."""

    def __init__(self, settings: ApiSettings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self.group = settings.dataset_group
        self.topics = settings.topics
        self.limit = RateLimit(settings.api_intake_requests_per_second)
        self._opened: asyncio.Future[tuple[Publisher, TrackerStore, SchemaRegistry]] | None = None
        self._looked_up: dict[str, tuple[float, Any]] = {}  # dataset -> (when, found or error)
        self.accepted = Counter(
            "streamrec_api_intake_total",
            "Events, items and users accepted over HTTP and published, by dataset.",
            ["dataset"],
            registry=registry,
        )

    def start(self) -> asyncio.Future[tuple[Publisher, TrackerStore, SchemaRegistry]]:
        """Open the parts in a worker thread; requests await them."""
        self._opened = asyncio.ensure_future(asyncio.to_thread(self._open))
        self._opened.add_done_callback(_report)
        return self._opened

    def _open(self) -> tuple[Publisher, TrackerStore, SchemaRegistry]:
        """The views, read once here (their first read blocks; later ones run in the
        background), then the producer: a failure leaves no producer behind."""
        settings = self._settings
        trackers, schemas = open_trackers(settings), open_registry(settings)
        trackers.of_group(self.group)
        schemas.list(self.group)
        return Publisher(settings), trackers, schemas

    async def _parts(self) -> tuple[Publisher, TrackerStore, SchemaRegistry]:
        opened = self._opened
        if opened is None or (opened.done() and _failed(opened)):
            opened = self.start()  # not started, or opening failed (Kafka was down): again
        return await asyncio.shield(opened)

    async def publish(self, topic: str, accepted: put_requests.Accepted) -> None:
        publisher, _, _ = await self._parts()
        await publisher.publish([(topic, record.key, record.value) for record in accepted.records])

    async def lookups(self, dataset: str) -> tuple[str | None, DatasetSchema]:
        """The group's tracking id and the dataset's current schema (or the error of their
        absence), looked up in a worker thread at most once every LOOKUP_SECONDS: a schema
        not registered, or an external registry, means a blocking read, and a thread hop
        per request cost more than the rest of a small request's checks."""
        now = time.monotonic()
        cached = self._looked_up.get(dataset)
        if cached is None or now - cached[0] > LOOKUP_SECONDS:
            _, trackers, schemas = await self._parts()
            try:
                found: Any = await asyncio.to_thread(self._look_up, trackers, schemas, dataset)
            except ApiRequestError as exc:
                found = exc
            cached = self._looked_up[dataset] = (now, found)
        if isinstance(cached[1], ApiRequestError):  # a new one: re-raising one grows its traceback
            raise type(cached[1])(str(cached[1]))
        return cast(tuple[str | None, DatasetSchema], cached[1])

    def _look_up(
        self, trackers: TrackerStore, schemas: SchemaRegistry, dataset: str
    ) -> tuple[str | None, DatasetSchema]:
        tracker = trackers.of_group(self.group)
        try:
            spec = schemas.current(self.group, dataset).spec
        except SchemaNotFoundError as exc:
            raise ApiRequestError(str(exc)) from exc
        if spec is None:
            raise ApiRequestError(f"the {dataset} schema of {self.group!r} is not a dataset schema")
        return (tracker.tracking_id if tracker is not None else None), spec

    def close(self) -> None:
        opened = self._opened
        if opened is not None and opened.done() and not _failed(opened):
            opened.result()[0].close()


def _report(opened: asyncio.Future[Any]) -> None:
    if not opened.cancelled() and opened.exception() is not None:
        log.warning("event intake could not open Kafka", extra={"error": str(opened.exception())})


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.cancelled() or future.exception() is not None


def register(
    app: web.Application,
    settings: ApiSettings,
    registry: CollectorRegistry,
    body: BodyReader,
    expect: Any,
) -> None:
    """Add POST /events, /items and /users to `app`; `body` reads a request's JSON."""
    intake = _Intake(settings, registry)

    async def events(request: web.Request) -> web.Response:
        intake.limit.take()
        decoded = await body(request)
        tracking_id, schema = await intake.lookups("interactions")
        accepted = put_requests.put_events(decoded, tracking_id, schema)
        await intake.publish(intake.topics.events, accepted)
        intake.accepted.labels("events").inc(accepted.count)
        return _empty()

    def entries(dataset: str, topic: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            intake.limit.take()
            decoded = await body(request)
            _, schema = await intake.lookups(dataset)
            accepted = put_requests.put_entries(decoded, dataset, intake.group, schema)
            await intake.publish(topic, accepted)
            intake.accepted.labels(dataset).inc(accepted.count)
            return _empty()

        return handle

    app.router.add_post("/events", events, expect_handler=expect)
    app.router.add_post("/items", entries("items", intake.topics.items), expect_handler=expect)
    app.router.add_post("/users", entries("users", intake.topics.users), expect_handler=expect)

    async def start(_: web.Application) -> None:
        intake.start()

    async def close(_: web.Application) -> None:
        await asyncio.to_thread(intake.close)

    app.on_startup.append(start)
    app.on_cleanup.append(close)


def _empty() -> web.Response:
    """Personalize's answer to a Put: 200 with no content."""
    return web.Response(status=200, content_type="application/json", body=b"{}")
