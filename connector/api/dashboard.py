"""The dashboard of `streamrec api`: a static page at /dashboard and the JSON it reads.

Why here: the page shows what the stream, the model and the lists are doing, from the same
sources the rest of the product exposes (the counters `streamrec metrics` reads, the topics
and consumer lag `streamrec status` reads, the model versions `streamrec models` lists, the
Redis keys of docs/redis-keys.md and the API's own GetRecommendations), so it needs no
process, store or build step of its own. Every endpoint only reads.

The page and its three static files hold no data, so they are served before the API-key
check (`public_shell`); the JSON under /dashboard/api/ needs a key like every other route,
which the page sends as `x-api-key`. Kafka is read in a worker thread, by one read at a time
shared by concurrent requests, so a page left open in many tabs costs the broker one client.

How the list changed after the last event: the precomputed list of a subject is overwritten
by each event, so the previous one is gone. Rather than change the public `:recs` contract
to keep it, `/dashboard/api/subject` ranks the subject's history without its last event and
with it, with the current model and no exploration, and returns both with the difference:
exactly what the last event did to the list under the model serving now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import numpy as np
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from confluent_kafka import Consumer, KafkaException, TopicPartition

from connector.api import ApiRequestError
from connector.api.dead_letter_counts import DeadLetterCounts
from connector.api.settings import ApiSettings
from connector.keys import Keys, Subject
from connector.redis_client import RedisClient
from connector.serving.current_model import ModelHolder, ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from connector.settings import CommonSettings, ConnectorSettings
from connector.sources.store import SourceStore, open_sources
from connector.stores.counters import recent_buckets
from connector.stores.histories import COMMANDS, HistoryReader, SubjectHistory
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore
from connector.topic_state import topic_states

STATIC = Path(__file__).with_name("static")
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
SHELL_ROUTES = frozenset({"dashboard", "dashboard-static"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_BUCKETS, DEAD_LETTERS, HISTORY, LIST = 240, 5, 20, 10
KAFKA_FRESH_SECONDS, KAFKA_TIMEOUT = 2.0, 5.0
T = TypeVar("T")


def register(
    app: web.Application, settings: ApiSettings, client: RedisClient, holder: ModelHolder
) -> None:
    """Add the page, its static files and the JSON endpoints to the API app."""
    reader = DashboardReader(client, settings, holder)
    kafka = _Shared(reader.kafka, KAFKA_FRESH_SECONDS)

    async def events(request: web.Request) -> web.Response:
        slots = _int(request, "buckets", 60, 1, MAX_BUCKETS)
        return _json(await asyncio.to_thread(reader.events, slots))

    async def kafka_state(request: web.Request) -> web.Response:
        try:
            return _json(await kafka.get())
        except KafkaException as exc:
            return _json({"message": f"Kafka could not be read: {exc}"}, 503)

    async def models(request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(reader.models))

    async def subject(request: web.Request) -> web.Response:
        who = _who(request)
        found = await asyncio.to_thread(reader.subject, who)
        if found is None:
            kind = _KINDS[who.kind]
            return _json({"message": f"no events and no list for {kind} {who.id!r}"}, 404)
        return _json(found)

    app.router.add_get("/dashboard", _page, name="dashboard")
    app.router.add_get("/dashboard/static/{name}", _static, name="dashboard-static")
    app.router.add_get("/dashboard/api/events", events)
    app.router.add_get("/dashboard/api/kafka", kafka_state)
    app.router.add_get("/dashboard/api/models", models)
    app.router.add_get("/dashboard/api/subject", subject)


def public_shell() -> Middleware:
    """Middleware, placed before the API-key check: the page and its static files (no data
    in them) are served without a key, so a browser can open the page and then give one."""

    @web.middleware
    async def shell(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if request.method in ("GET", "HEAD") and match.route.name in SHELL_ROUTES:
            return await match.handler(request)
        return await handler(request)

    return shell


async def _page(request: web.Request) -> web.StreamResponse:
    return _file("index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in FILES or name == "index.html":
        raise web.HTTPNotFound()
    return _file(name)


def _file(name: str) -> web.FileResponse:
    headers = {
        "Content-Type": f"{FILES[name]}; charset=utf-8",
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(STATIC / name, headers=headers)


class DashboardReader:
    """What each panel shows, read synchronously (the routes run it in a worker thread)."""

    def __init__(self, client: RedisClient, settings: ApiSettings, holder: ModelHolder) -> None:
        self._client, self._holder = client, holder
        self._keys = Keys(settings.dataset_group)
        common = {name: getattr(settings, name) for name in CommonSettings.model_fields}
        # The connector's own settings (consumer group, bucket width, list policy) come from
        # the same STREAMREC_* environment the connector reads.
        self._connector = ConnectorSettings(**common)
        self._lists = RecommendationLists(client, self._keys, 1)
        self._histories = HistoryReader(client, self._keys, settings.history_length)
        self._dead_by_origin = DeadLetterCounts(self._connector, KAFKA_TIMEOUT)

    def events(self, slots: int) -> dict[str, Any]:
        """Events per type and per attribution source in the last `slots` buckets of event
        time, ending at the newest bucket with counts; buckets without events count 0."""
        width = self._connector.metrics_bucket_seconds
        found = recent_buckets(self._client, self._keys, slots)
        end = found[-1].bucket if found else 0
        starts = [end - width * n for n in range(slots - 1, -1, -1)] if found else []
        counts = {bucket.bucket: bucket for bucket in found}
        buckets = [
            {
                "start": start,
                "byType": counts[start].by_type if start in counts else {},
                "bySource": counts[start].by_source if start in counts else {},
            }
            for start in starts
        ]
        return {
            "bucketSeconds": width,
            "buckets": buckets,
            "types": _totals(bucket["byType"] for bucket in buckets),
            "sources": _totals(bucket["bySource"] for bucket in buckets),
        }

    @cached_property
    def _sources(self) -> SourceStore:
        """The group's sources, opened on the first Kafka panel read: opening creates the
        sources topic, which an API start must not wait on."""
        return open_sources(self._connector)

    def kafka(self) -> dict[str, Any]:
        """The group's topics with records and the connector's lag, the dead letters, and
        each source with its topic's records, lag and dead letters."""
        settings = self._connector
        sources = self._sources.list()
        states = topic_states(settings, tuple(source.topic for source in sources))
        dead = next(state for state in states if state.name == settings.topics.deadletter)
        by_origin = self._dead_by_origin.by_origin() if dead.records else {}
        by_topic = {state.name: state for state in states}
        return {
            "consumerGroup": settings.consumer_group,
            "lag": sum(state.lag or 0 for state in states),
            "topics": [
                {"name": s.name, "exists": s.exists, "records": s.records, "lag": s.lag}
                for s in states
            ],
            "deadLetters": {
                "topic": dead.name,
                "count": dead.records,
                "latest": latest_dead_letters(settings, DEAD_LETTERS) if dead.records else [],
            },
            "sources": [
                {
                    **source.summary(),
                    "records": by_topic[source.topic].records,
                    "lag": by_topic[source.topic].lag,
                    "deadLetters": by_origin.get(source.topic, 0),
                }
                for source in sources
            ],
        }

    def models(self) -> dict[str, Any]:
        """Every model version, newest first, with its offline metrics and training run."""
        store = ModelStore(self._client, self._keys)
        serving = self._holder.current
        versions = []
        for info in store.versions():
            meta = store.meta(info.version) if info.complete else {}
            data = meta.get("data") or {}
            versions.append(
                {
                    "version": info.version,
                    "created": info.created.timestamp(),
                    "complete": info.complete,
                    "current": info.current,
                    "items": info.items,
                    "metrics": info.metrics,
                    "mode": meta.get("mode"),
                    "trainingSeconds": meta.get("training_seconds"),
                    "interactions": data.get("interactions"),
                    "users": data.get("users"),
                }
            )
        return {
            "datasetGroup": self._keys.group,
            "serving": serving.version if serving is not None else None,
            "versions": versions,
        }

    def subject(self, who: Subject) -> dict[str, Any] | None:
        """A user's or session's recent events, precomputed list and the change its last
        event made; None when there is neither history nor list."""
        subject, stitched = self._resolve(who)
        pipe = self._client.pipeline(transaction=False)
        self._histories.queue(pipe, subject)
        pipe.zcard(self._keys.history(subject))
        replies = pipe.execute()
        history, length = self._histories.parse(replies[:COMMANDS]), int(replies[COMMANDS])
        members = history.members
        stored = self._lists.read(subject)
        if not members and stored is None:
            return None
        events = [_event(member) for member in members[-HISTORY:]][::-1]
        change = self._change(history)
        stored_items = stored.items[:LIST] if stored is not None else []
        ids = [e["itemId"] for e in events] + [item for item, _ in stored_items]
        ids += [e["itemId"] for side in ("before", "after") for e in change.get(side, [])]
        return {
            "subject": {"kind": _KINDS[subject.kind], "id": subject.id},
            "stitchedFrom": stitched,
            "historyLength": length,
            "events": events,
            "stored": None
            if stored is None
            else {
                "version": stored.version,
                "updated": stored.updated_ms,
                "length": len(stored.items),
                "itemList": [{"itemId": i, "score": s} for i, s in stored_items],
            },
            "lastEventChange": change,
            "metadata": self._metadata(ids),
        }

    def _resolve(self, who: Subject) -> tuple[Subject, str | None]:
        """A session stitched to a user is that user (as the API serves it)."""
        if who.kind != "s":
            return who, None
        linked = self._client.get(self._keys.session_user(who.id))
        if linked is None:
            return who, None
        return Subject("u", cast(bytes, linked).decode()), who.id

    def _change(self, history: SubjectHistory) -> dict[str, Any]:
        """The top LIST items without the last event and with it, with the current model,
        no exploration and no filter, and what entered, left or moved."""
        served = self._holder.current
        if served is None or not history.members:
            return {}
        events, seen = history.events, history.interacted_items
        before, after = (
            _ranked(served, ranking.columns, ranking.scores)
            for ranking in recommend_many(
                served,
                [events[:-1], events],
                LIST,
                Exploration(0.0),
                np.random.default_rng(0),
                interacted=[seen, seen],
            )
        )
        earlier = {entry["itemId"]: rank for rank, entry in enumerate(before, start=1)}
        now = {entry["itemId"] for entry in after}
        for rank, entry in enumerate(after, start=1):
            entry["previousRank"] = earlier.get(entry["itemId"])
            entry["rank"] = rank
        return {
            "modelVersion": served.version,
            "lastEvent": _event(history.members[-1]),
            "before": before,
            "after": after,
            "entered": [e["itemId"] for e in after if e["previousRank"] is None],
            "left": [e["itemId"] for e in before if e["itemId"] not in now],
        }

    def _metadata(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """Each item's Items-dataset fields (ITEM_ID left out), one pipeline."""
        unique = list(dict.fromkeys(ids))
        pipe = self._client.pipeline(transaction=False)
        for item in unique:
            pipe.hgetall(self._keys.item(item))
        rows = cast(list[dict[bytes, bytes]], pipe.execute())
        return {
            item: {k.decode(): v.decode() for k, v in row.items() if k != b"ITEM_ID"}
            for item, row in zip(unique, rows, strict=True)
            if row
        }


_KINDS = {"u": "user", "s": "session"}


def latest_dead_letters(settings: ConnectorSettings, count: int) -> list[dict[str, Any]]:
    """The newest `count` dead letters of the group (by broker timestamp), with the reason
    and origin the connector put in their headers."""
    topic = settings.topics.deadletter
    consumer = Consumer(
        {**settings.kafka_config(), "group.id": "streamrec-dashboard", "enable.auto.commit": False}
    )
    try:
        listed = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT).topics
        if topic not in listed or listed[topic].error is not None:
            return []
        found: list[dict[str, Any]] = []
        for partition in sorted(listed[topic].partitions):
            found += _tail(consumer, TopicPartition(topic, partition), count)
        return sorted(found, key=lambda letter: letter["timestamp"], reverse=True)[:count]
    finally:
        consumer.close()


def _tail(consumer: Consumer, partition: TopicPartition, count: int) -> list[dict[str, Any]]:
    """The last `count` records of one partition (fewer when it holds fewer)."""
    low, high = consumer.get_watermark_offsets(partition, timeout=KAFKA_TIMEOUT)
    start = max(low, high - count)
    if high <= start:
        return []
    consumer.assign([TopicPartition(partition.topic, partition.partition, start)])
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + KAFKA_TIMEOUT
    while len(letters) < high - start and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        raw = message.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        headers = {key: _text(value) for key, value in pairs if value is not None}
        letters.append(
            {
                "timestamp": message.timestamp()[1],
                "partition": message.partition(),
                "offset": message.offset(),
                "reason": headers.get("streamrec.reason", ""),
                "origin": _origin(headers),
            }
        )
    return letters


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _origin(headers: dict[str, str]) -> str | None:
    topic = headers.get("streamrec.topic")
    if topic is None:
        return None
    return f"{topic}[{headers.get('streamrec.partition')}]@{headers.get('streamrec.offset')}"


@dataclass
class _Shared(Generic[T]):
    """One read at a time, shared by the requests that arrive while it runs, and reused for
    `fresh` seconds; a read outliving its request's timeout finishes for the next one."""

    read: Callable[[], T]
    fresh: float
    _value: tuple[float, T] | None = None
    _task: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._value[0] < self.fresh:
            return self._value[1]
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(asyncio.to_thread(self._stamped))
        return await asyncio.shield(self._task)

    def _stamped(self) -> T:
        value = self.read()
        self._value = (time.monotonic(), value)
        return value


def _event(member: bytes) -> dict[str, Any]:
    """One history member as the page shows it."""
    entry: dict[str, Any] = orjson.loads(member)
    return {
        "itemId": str(entry["item"]),
        "eventType": entry.get("type"),
        "eventValue": entry.get("value"),
        "timestamp": entry.get("ts"),
        "impression": len(entry.get("impression") or ()),
    }


def _ranked(served: ServingModel, columns: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    ids = served.model.items
    return [
        {"itemId": ids[int(c)], "score": round(float(s), 6)}
        for c, s in zip(columns, scores, strict=True)
    ]


def _totals(counts: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for bucket in counts:
        for name, count in bucket.items():
            totals[name] = totals.get(name, 0) + count
    return dict(sorted(totals.items(), key=lambda pair: -pair[1]))


def _who(request: web.Request) -> Subject:
    """userId or sessionId from the query (the names GetRecommendations uses)."""
    user, session = request.query.get("userId", ""), request.query.get("sessionId", "")
    if bool(user) == bool(session):
        raise ApiRequestError("give exactly one of userId and sessionId")
    value = user or session
    if len(value) > 256:
        raise ApiRequestError("userId and sessionId are at most 256 characters")
    return Subject("u" if user else "s", value)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiRequestError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _json(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")
