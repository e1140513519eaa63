"""The worker's training data, read back from what the real connector wrote to the real broker:
exact rows, at-least-once repeats dropped, anonymous sessions stitched, the local cache
reading only new records, item and user catalogs, and the whole load with its selection."""

from __future__ import annotations

import json
import time
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from connector.ingest.processor import EventProcessor
from connector.records import SourceRecord
from connector.registry.registry import open_registry
from connector.settings import CommonSettings, ConnectorSettings
from connector.wiring import ensure_group_topics, event_processor, processors
from tests.integration.helpers import (
    Message,
    decode_rows,
    prepare_group,
    put_events,
    read_topic,
)
from worker.data import cache as data_cache
from worker.data.cache import (
    CacheUpdate,
    DataCache,
    context_fields,
    load_training_data,
    to_interactions,
)
from worker.data.catalog import read_items, read_users
from worker.data.reader import RowDecoder, TopicReader, read_rows
from worker.exceptions import NotEnoughDataError
from worker.settings import WorkerSettings

T0 = 1_700_000_000
_offsets = count()


@pytest.fixture
def tracking_id(settings: ConnectorSettings, redis_db: redis.Redis) -> str:
    """The group's schemas, topics and tracker (redis_db cleans the group's keys after)."""
    return prepare_group(settings)


@pytest.fixture
def processor(settings: ConnectorSettings, tracking_id: str) -> EventProcessor:
    return event_processor(settings)


@pytest.fixture
def worker_settings(settings: ConnectorSettings, tmp_path: Path) -> WorkerSettings:
    """Worker settings on this test's group and services, with a cache of its own."""
    common = {name: getattr(settings, name) for name in CommonSettings.model_fields}
    return WorkerSettings(**common, worker_cache_dir=tmp_path / "cache")


def event(item: str, ts: int, kind: str = "click", **extra: Any) -> dict[str, Any]:
    return {"eventType": kind, "itemId": item, "sentAt": ts, **extra}


def publish(processor: EventProcessor, settings: CommonSettings, values: list[bytes]) -> None:
    """Through the connector's own batch path: plan, dedup, append, apply."""
    batch = [SourceRecord(settings.topics.events, 0, next(_offsets), b"k", v) for v in values]
    report = processor.process(batch)
    assert report.dead == 0, report


def append_again(settings: CommonSettings, message: Message) -> None:
    """Append a dataset record a second time, byte for byte with its headers: what a crash
    between the connector's append and its commit leaves behind."""
    producer = Producer(settings.kafka_config())
    headers = list(message.headers.items())
    producer.produce(settings.topics.interactions, message.value, message.key, headers=headers)
    assert producer.flush(30) == 0


def update(settings: WorkerSettings) -> CacheUpdate:
    registry = open_registry(settings)
    spec = registry.get(settings.dataset_group, "interactions").spec
    decode = RowDecoder(registry, settings.dataset_group, "interactions")
    with TopicReader(settings, settings.topics.interactions) as reader:
        return cache(settings).update(reader, decode, context_fields(spec))


def cache(settings: WorkerSettings) -> DataCache:
    return DataCache(settings.worker_cache_dir / settings.dataset_group)


def by_user(rows: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        found.setdefault(row["USER_ID"], []).append(
            (row["ITEM_ID"], row["TIMESTAMP"], row["EVENT_TYPE"], row["EVENT_VALUE"], row["DEVICE"])
        )
    return found


def test_reader_returns_exactly_the_published_rows_once(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    worker_settings: WorkerSettings,
) -> None:
    phone = {"properties": {"device": "phone", "location": "paris"}}
    publish(
        processor,
        settings,
        [
            put_events(
                tracking_id,
                "s1",
                [event("a", T0), event("b", T0 + 1, "buy", eventValue=2.5)],
                "alice",
            ),
            put_events(tracking_id, "s2", [event("x", T0 + 5, **phone)], "bob"),
        ],
    )
    publish(
        processor,
        settings,
        [
            put_events(tracking_id, "s1", [event("c", T0 + 2, eventValue=0.5)], "alice"),
            put_events(tracking_id, "s3", [event("y", T0 + 6), event("z", T0 + 7, **phone)], "bob"),
        ],
    )
    written = read_topic(settings, settings.topics.interactions)
    append_again(settings, written[0])
    assert len(read_topic(settings, settings.topics.interactions)) == 7
    rows = read_rows(worker_settings)
    assert len(rows) == 6
    assert by_user(rows) == {
        "alice": [
            ("a", T0, "click", None, None),
            ("b", T0 + 1, "buy", 2.5, None),
            ("c", T0 + 2, "click", 0.5, None),
        ],
        "bob": [
            ("x", T0 + 5, "click", None, "phone"),
            ("y", T0 + 6, "click", None, None),
            ("z", T0 + 7, "click", None, "phone"),
        ],
    }
    assert {row["LOCATION"] for row in rows} == {None, "paris"}


def test_anonymous_rows_go_to_the_user_the_session_logged_in_as(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    worker_settings: WorkerSettings,
) -> None:
    publish(
        processor,
        settings,
        [put_events(tracking_id, "sess", [event("a1", T0), event("a2", T0 + 1)])],
    )
    publish(processor, settings, [put_events(tracking_id, "lurker", [event("l1", T0 + 2)])])
    publish(processor, settings, [put_events(tracking_id, "sess", [event("k1", T0 + 3)], "dora")])
    publish(processor, settings, [put_events(tracking_id, "sess", [event("a3", T0 + 4)])])
    raw = {row["ITEM_ID"]: row["USER_ID"] for row in _decoded(settings)}
    assert raw["a1"] == "sess"  # the dataset itself still holds the session id
    owners = {row["ITEM_ID"]: row["USER_ID"] for row in read_rows(worker_settings)}
    assert owners == {"a1": "dora", "a2": "dora", "k1": "dora", "a3": "dora", "l1": "lurker"}


def _decoded(settings: ConnectorSettings) -> list[dict[str, Any]]:
    return decode_rows(settings, read_topic(settings, settings.topics.interactions))


def test_second_run_reads_only_new_records_and_still_dedups_and_stitches(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    worker_settings: WorkerSettings,
) -> None:
    publish(
        processor,
        settings,
        [
            put_events(tracking_id, "s", [event(f"i{n}", T0 + n) for n in range(10)], f"u{m}")
            for m in range(3)
        ]
        + [put_events(tracking_id, "anon", [event("a1", T0 + 50)])],
    )
    first = update(worker_settings)
    assert (first.fetched, first.added, first.rebuilt) == (31, 31, False)
    publish(
        processor,
        settings,
        [
            put_events(tracking_id, "s", [event("new1", T0 + 100), event("new2", T0 + 101)], "u1"),
            put_events(tracking_id, "anon", [event("k1", T0 + 102)], "erin"),  # the login
        ],
    )
    append_again(settings, read_topic(settings, settings.topics.interactions)[0])  # a run-1 row
    second = update(worker_settings)
    assert (second.fetched, second.added, second.duplicates) == (4, 3, 1)
    assert second.rows == 34
    third = update(worker_settings)
    assert (third.fetched, third.added) == (0, 0)
    data = to_interactions(cache(worker_settings).columns(), ["DEVICE", "LOCATION"])
    assert len(data) == 34
    sequences = {
        data.users[user]: [data.items[i] for i in data.item[rows]]
        for user, rows in data.sequences()
    }
    assert sequences["u1"] == [f"i{n}" for n in range(10)] + ["new1", "new2"]
    assert sequences["erin"] == ["a1", "k1"]
    assert "anon" not in sequences


def test_small_runs_fill_the_last_chunk_up_to_its_limit(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    worker_settings: WorkerSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(data_cache, "CHUNK_ROWS", 2)
    for run in range(3):
        publish(
            processor, settings, [put_events(tracking_id, "s", [event(f"r{run}", T0 + run)], "u")]
        )
        assert update(worker_settings).fetched == 1
    files = sorted(path.name for path in cache(worker_settings).directory.iterdir())
    assert files == ["chunk-000002.npz", "chunk-000003.npz", "manifest.json"]  # 2 rows, 1 row
    assert cache(worker_settings).manifest().chunk_rows == [2, 1]  # type: ignore[union-attr]
    data = to_interactions(cache(worker_settings).columns(), [])
    assert [data.items[i] for i in data.item] == ["r0", "r1", "r2"]


def test_a_recreated_topic_rebuilds_the_cache(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    worker_settings: WorkerSettings,
) -> None:
    publish(
        processor,
        settings,
        [put_events(tracking_id, "s", [event(f"i{n}", T0 + n) for n in range(5)], "u")],
    )
    assert update(worker_settings).rows == 5
    _recreate(settings)
    publish(processor, settings, [put_events(tracking_id, "s2", [event("fresh", T0 + 99)], "v")])
    rebuilt = update(worker_settings)
    assert (rebuilt.rebuilt, rebuilt.rows, rebuilt.fetched) == (True, 1, 1)
    files = sorted(path.name for path in cache(worker_settings).directory.iterdir())
    assert files == ["chunk-000002.npz", "manifest.json"]  # the old chunk is gone
    data = to_interactions(cache(worker_settings).columns(), [])
    assert data.items == ["fresh"]


def _recreate(settings: ConnectorSettings) -> None:
    """Delete and recreate the Interactions topic (the broker needs a moment in between)."""
    admin = AdminClient(settings.kafka_config())
    admin.delete_topics([settings.topics.interactions])[settings.topics.interactions].result(30)
    deadline = time.monotonic() + 30
    while settings.topics.interactions in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ensure_group_topics(settings)


def test_catalogs_hold_the_latest_row_of_every_item_and_user(
    settings: ConnectorSettings, tracking_id: str, worker_settings: WorkerSettings
) -> None:
    handlers = processors(settings)
    items = [
        {"itemId": "m1", "properties": {"creationTimestamp": T0, "genres": "Action"}},
        {"itemId": "m2", "properties": {"title": "Up"}},
    ]
    update_m1 = [{"itemId": "m1", "properties": {"creationTimestamp": T0 + 9, "genres": "Drama"}}]
    handlers.items.process(
        [
            SourceRecord(settings.topics.items, 0, 0, b"k", json.dumps({"items": items}).encode()),
            SourceRecord(
                settings.topics.items, 0, 1, b"k", json.dumps({"items": update_m1}).encode()
            ),
        ]
    )
    handlers.users.process(
        [
            SourceRecord(
                settings.topics.users,
                0,
                0,
                b"k",
                json.dumps(
                    {"users": [{"userId": "u1", "properties": {"age": 31, "gender": "f"}}]}
                ).encode(),
            )
        ]
    )
    catalog = read_items(worker_settings)
    assert catalog.ids == ["m1", "m2"]
    assert catalog.creation_timestamp == [T0 + 9, None]
    assert catalog.metadata == {"TITLE": [None, "Up"], "GENRES": ["Drama", None]}
    users = read_users(worker_settings)
    assert (users.ids, users.row("u1")) == (["u1"], {"AGE": 31, "GENDER": "f", "OCCUPATION": None})


def test_load_training_data_applies_the_selection_and_the_minimum(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    worker_settings: WorkerSettings,
) -> None:
    def batch(users: range) -> list[bytes]:
        return [
            put_events(
                tracking_id,
                f"s{u}",
                [
                    event(
                        f"i{(u + k) % 50}", T0 + 10 * block + k, properties={"device": f"d{u % 3}"}
                    )
                    for k in range(10)
                ],
                f"u{u}",
            )
            for u in users
            for block in range(4)
        ]

    publish(processor, settings, batch(range(20)))
    with pytest.raises(NotEnoughDataError, match="800 interactions and 20 users"):
        load_training_data(worker_settings)
    publish(processor, settings, batch(range(20, 30)))
    data = load_training_data(worker_settings)
    assert (len(data), len(data.users)) == (1200, 30)
    assert sorted(data.context_values["DEVICE"]) == ["", "d0", "d1", "d2"]
    first = dict(data.sequences())[data.users.index("u7")]
    assert [data.items[i] for i in data.item[first]][:3] == ["i7", "i8", "i9"]
