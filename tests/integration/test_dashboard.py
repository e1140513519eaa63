"""The dashboard's JSON endpoints against the real Redis and broker, through a real HTTP server.

Items, events and dead letters go through the connector's own processors, two small models
are really trained and published through ModelStore, raw records wait in the events topic
for a connector that is not running (lag), and the app is `streamrec api`'s. Each panel's
figures are checked against what the test put in; the user explorer's "before the last
event" list against what GetRecommendations answered before that event was sent.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import replace
from itertools import count
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from connector.api.app import create_app
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys
from connector.model.model import Hyperparameters, Model
from connector.records import SourceRecord
from connector.redis_client import open_url
from connector.settings import ConnectorSettings
from connector.sources.store import open_sources
from connector.stores.model_versions import ModelStore
from connector.wiring import Processors, processors
from tests.integration.helpers import prepare_group, put_events
from tests.integration.test_api import Server, api_settings, artifacts, training_rows
from worker.data.interactions import Interactions, from_rows
from worker.training.fit import train

A = 1_700_010_000  # a bucket start: divisible by the 60 s bucket width
ITEMS = ["p0", "p1"] + [f"i{k}" for k in range(30)]
_offsets = count()


@pytest.fixture(scope="module")
def trained() -> tuple[Model, Interactions]:
    data = from_rows(training_rows())
    return train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=3), seed=11), data


class World:
    """A group with item titles, two published versions and the connector's processors."""

    def __init__(self, settings: ConnectorSettings, trained: tuple[Model, Interactions]) -> None:
        self.settings = settings
        self.tracking_id = prepare_group(settings)
        store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
        base = artifacts(trained)
        full = {
            "mode": "full",
            "training_seconds": 1.25,
            "metrics": {"ndcg@10": 0.5, "hr@10": 0.75},
        }
        self.first = store.publish(replace(base, meta={**base.meta, **full}), keep=3)
        update = {"mode": "update", "training_seconds": 0.5, "metrics": {"ndcg@10": 0.25}}
        self.second = store.publish(replace(base, meta={**base.meta, **update}), keep=3)
        self.processors: Processors = processors(settings)
        titles = [{"itemId": i, "properties": {"title": f"Title {i}"}} for i in ITEMS]
        for start in range(0, len(titles), 10):  # PutItems takes up to 10 items
            chunk = json.dumps({"items": titles[start : start + 10]}).encode()
            assert self._process("items", chunk).dead == 0

    def _process(self, kind: str, value: bytes) -> Any:
        processor = getattr(self.processors, kind)
        topic = getattr(self.settings.topics, kind)
        return processor.process([SourceRecord(topic, 0, next(_offsets), b"k", value)])

    def send(
        self, session: str, user: str | None, *events: tuple[str, int, dict[str, Any]]
    ) -> None:
        """Events (item, seconds after A, extra fields) as one PutEvents record."""
        listed = [
            {"eventType": "click", "itemId": item, "sentAt": A + at, **extra}
            for item, at, extra in events
        ]
        report = self._process("events", put_events(self.tracking_id, session, listed, user))
        assert (report.appended, report.dead) == (len(events), 0)

    def reject(self, value: bytes) -> None:
        assert self._process("events", value).dead == 1


@pytest.fixture
def world(settings: ConnectorSettings, redis_db: redis.Redis, trained: Any) -> World:
    return World(settings, trained)


def get(server: Server, path: str, key: str | None = None) -> tuple[int, Any, dict[str, str]]:
    """Status, body (JSON decoded when it is JSON) and headers of a GET."""
    headers = {"x-api-key": key} if key else {}
    request = urllib.request.Request(server.base + path, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, raw, found = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, found = error.code, error.read(), dict(error.headers)
    try:
        return status, json.loads(raw), found
    except ValueError:
        return status, raw.decode(), found


def ok(server: Server, path: str) -> dict[str, Any]:
    status, body, _ = get(server, path)
    assert status == 200, body
    return dict(body)


def recommended(server: Server, user: str) -> list[str]:
    return server.ids({"userId": user, "numResults": 10})


def test_events_and_attribution_by_bucket_with_empty_buckets_filled(world: World) -> None:
    world.send("sa", "alice", ("p0", 1, {}), ("p1", 2, {}), ("i3", 3, {}))
    email = {"eventType": "watch", "metricAttribution": {"eventAttributionSource": "email"}}
    world.send("sb", "bob", ("i7", 121, email))
    world.send("sa", "alice", ("i4", 122, {}))
    with serve(world) as server:
        answer = ok(server, "/dashboard/api/events?buckets=3")
        assert answer["bucketSeconds"] == 60
        assert answer["buckets"] == [
            {"start": A, "byType": {"click": 3}, "bySource": {"SOURCE_NAME_UNDEFINED": 3}},
            {"start": A + 60, "byType": {}, "bySource": {}},
            {
                "start": A + 120,
                "byType": {"click": 1, "watch": 1},
                "bySource": {"SOURCE_NAME_UNDEFINED": 1, "email": 1},
            },
        ]
        assert answer["types"] == {"click": 4, "watch": 1}
        assert answer["sources"] == {"SOURCE_NAME_UNDEFINED": 4, "email": 1}
        narrow = ok(server, "/dashboard/api/events?buckets=2")
        assert [b["start"] for b in narrow["buckets"]] == [A + 60, A + 120]
        assert narrow["types"] == {"click": 1, "watch": 1}
        assert get(server, "/dashboard/api/events?buckets=0")[0] == 400


def test_kafka_lag_dead_letter_count_and_latest_reasons(world: World) -> None:
    world.reject(put_events(world.tracking_id, "s1", [{"eventType": "click", "sentAt": A}]))
    time.sleep(0.05)  # distinct broker timestamps, so "latest" has one order
    world.reject(b"not json at all")
    producer = Producer(world.settings.kafka_config())
    for n in range(3):  # waiting for a connector that is not running
        producer.produce(world.settings.topics.events, b"{}", key=str(n).encode())
    assert producer.flush(10) == 0
    with serve(world) as server:
        answer = ok(server, "/dashboard/api/kafka")
    assert answer["consumerGroup"] == f"streamrec-connector-{world.settings.dataset_group}"
    assert answer["lag"] == 3
    topics = {topic["name"]: topic for topic in answer["topics"]}
    assert topics[world.settings.topics.events]["lag"] == 3
    assert topics[world.settings.topics.deadletter]["lag"] is None
    dead = answer["deadLetters"]
    assert dead["count"] == 2
    reasons = [letter["reason"] for letter in dead["latest"]]
    assert len(reasons) == 2 and "JSON" in reasons[0], reasons
    assert reasons[1] == "ITEM_ID is required but missing"
    assert dead["latest"][1]["origin"].startswith(f"{world.settings.topics.events}[0]@")


def test_model_versions_with_metrics_and_training_time(world: World) -> None:
    with serve(world) as server:
        answer = ok(server, "/dashboard/api/models")
    assert answer["datasetGroup"] == world.settings.dataset_group
    assert answer["serving"] == world.second
    second, first = answer["versions"]
    assert (second["version"], first["version"]) == (world.second, world.first)
    assert (second["current"], first["current"]) == (True, False)
    assert (first["mode"], first["trainingSeconds"]) == ("full", 1.25)
    assert first["metrics"] == {"ndcg@10": 0.5, "hr@10": 0.75}
    assert (second["mode"], second["trainingSeconds"]) == ("update", 0.5)
    assert first["items"] == len(ITEMS)


def test_subject_shows_events_list_and_what_the_last_event_changed(world: World) -> None:
    world.send("sa", "alice", ("p0", 1, {}), ("p1", 2, {}), ("i3", 3, {}), ("i4", 4, {}))
    with serve(world) as server:
        served_before = recommended(server, "alice")
        world.send("sa", "alice", ("i5", 5, {"eventValue": 4.5}))
        served_after = recommended(server, "alice")
        answer = ok(server, "/dashboard/api/subject?userId=alice")
        by_session = ok(server, "/dashboard/api/subject?sessionId=sa")
        world.send("anon", None, ("i9", 9, {}))
        anonymous = ok(server, "/dashboard/api/subject?sessionId=anon")
        missing = get(server, "/dashboard/api/subject?userId=nobody")
        both = get(server, "/dashboard/api/subject?userId=alice&sessionId=sa")
    assert answer["subject"] == {"kind": "user", "id": "alice"}
    assert answer["historyLength"] == 5
    events = answer["events"]
    assert [e["itemId"] for e in events] == ["i5", "i4", "i3", "p1", "p0"]  # newest first
    assert (events[0]["eventType"], events[0]["eventValue"]) == ("click", 4.5)
    assert answer["stored"]["version"] == world.second
    assert answer["stored"]["length"] == len(ITEMS) - 5  # every item not seen yet
    change = answer["lastEventChange"]
    assert change["modelVersion"] == world.second
    assert change["lastEvent"]["itemId"] == "i5"
    assert [e["itemId"] for e in change["before"]] == served_before
    assert [e["itemId"] for e in change["after"]] == served_after
    assert served_before != served_after
    assert "i5" not in served_after
    entered = [e["itemId"] for e in change["after"] if e["previousRank"] is None]
    assert change["entered"] == entered
    assert change["left"] == [i for i in served_before if i not in served_after]
    assert all(answer["metadata"][i] == {"TITLE": f"Title {i}"} for i in served_after)
    assert by_session["subject"] == {"kind": "user", "id": "alice"}
    assert by_session["stitchedFrom"] == "sa"
    assert anonymous["subject"] == {"kind": "session", "id": "anon"}
    assert [e["itemId"] for e in anonymous["events"]] == ["i9"]
    assert missing[0] == 404 and "user 'nobody'" in missing[1]["message"]
    assert both[0] == 400


def test_page_is_open_and_json_needs_a_key_when_keys_are_on(world: World) -> None:
    with serve(world, api_keys="k-dash") as server:
        status, page, headers = get(server, "/dashboard")
        assert status == 200 and "User explorer" in page
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        status, script, headers = get(server, "/dashboard/static/app.js")
        assert status == 200 and "dashboard/api/subject" in script
        assert headers["Content-Type"].startswith("text/javascript")
        assert get(server, "/dashboard/static/secrets.txt")[0] == 404
        assert get(server, "/dashboard/static/..%2Fsettings.py")[0] == 404
        assert get(server, "/dashboard/api/models")[0] == 401
        assert get(server, "/dashboard/api/models", key="wrong")[0] == 401
        status, answer, _ = get(server, "/dashboard/api/models", key="k-dash")
        assert status == 200 and answer["serving"] == world.second


def serve(world: World, **overrides: Any) -> Server:
    """The API app of the world's group, exploration off (lists comparable run to run)."""
    return Server(create_app(api_settings(world.settings, **overrides)))


def test_sources_with_their_records_lag_and_dead_letters(world: World) -> None:
    settings = world.settings
    topic = f"web.clicks.{settings.dataset_group}"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, 1)])
    mapping = {
        "fields": {
            "userId": {"path": "user"},
            "eventType": {"const": "click"},
            "itemId": {"path": "item"},
            "sentAt": {"path": "at"},
        }
    }
    open_sources(settings).create("clicks", topic, "json", mapping, None)
    values = [json.dumps({"user": "u1", "item": "i1", "at": A}).encode(), b"{broken"]
    producer = Producer(settings.kafka_config())
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(10) == 0
    records = [SourceRecord(topic, 0, n, None, value) for n, value in enumerate(values)]
    report = processors(settings).sources[topic].process(records)
    assert (report.appended, report.dead) == (1, 1)  # type: ignore[union-attr]
    world.reject(b"not json at all")  # a dead letter of the events topic, not of the source
    with serve(world) as server:
        answer = ok(server, "/dashboard/api/kafka")
    (source,) = answer["sources"]
    assert (source["name"], source["topic"], source["format"], source["target"]) == (
        "clicks",
        topic,
        "json",
        "events",
    )
    assert (source["records"], source["lag"], source["deadLetters"]) == (2, 2, 1)
    assert answer["deadLetters"]["count"] == 2
