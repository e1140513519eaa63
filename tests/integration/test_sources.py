"""Existing topics in their own shape: a source's mapping turns a web-analytics clickstream
(nested fields, millisecond timestamps) into events of the Interactions dataset, with the
event path's validation, dedup and dead letters; malformed mappings are refused at creation
by `streamrec sources create` with exit status 1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer

from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.sources.store import open_sources
from connector.wiring import processors
from tests.integration.helpers import decode_rows, prepare_group, read_topic

pytestmark = pytest.mark.integration

T0_MS = 1_700_000_000_000

CLICKS_MAPPING = {
    "target": "events",
    "skip": [{"path": "event", "in": ["heartbeat"]}],
    "fields": {
        "userId": {"path": "visitor.account.id", "convert": "string"},
        "sessionId": {"path": "visitor.session"},
        "eventType": {"path": "event", "values": {"product_view": "view", "add_to_cart": "cart"}},
        "itemId": {"path": "products[0].sku"},
        "sentAt": {"path": "timestamp", "convert": "epoch_millis"},
        "eventId": {"path": "id"},
    },
}

CLICKS_SCHEMA = {
    "type": "record",
    "name": "Click",
    "namespace": "com.shop.analytics",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "event", "type": "string"},
        {"name": "timestamp", "type": "long"},
        {
            "name": "visitor",
            "type": {
                "type": "record",
                "name": "Visitor",
                "fields": [
                    {"name": "session", "type": "string"},
                    {
                        "name": "account",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "Account",
                                "fields": [{"name": "id", "type": "long"}],
                            },
                        ],
                    },
                ],
            },
        },
        {
            "name": "products",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Product",
                    "fields": [
                        {"name": "sku", "type": "string"},
                        {"name": "price", "type": "double"},
                    ],
                },
            },
        },
    ],
}


def click(n: int, event: str, account: int | None, sku: str, **overrides: Any) -> dict[str, Any]:
    record = {
        "id": f"c{n}",
        "event": event,
        "timestamp": T0_MS + 1000 * n + 250,
        "visitor": {"session": f"sess-{account or 'anon'}", "account": None},
        "products": [{"sku": sku, "price": 19.99}],
        "page": {"url": f"/p/{sku}", "referrer": "https://search.example"},
    }
    if account is not None:
        record["visitor"]["account"] = {"id": account}
    return {**record, **overrides}


def clickstream_topic(settings: ConnectorSettings) -> str:
    topic = f"web.clicks.{settings.dataset_group}"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, 1)])
    return topic


def publish(settings: ConnectorSettings, topic: str, values: list[bytes]) -> list[SourceRecord]:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    return [
        SourceRecord(topic, m.partition, m.offset, m.key, m.value)
        for m in read_topic(settings, topic)
    ]


def history(redis_db: redis.Redis, settings: ConnectorSettings, subject: Subject) -> list[str]:
    key = Keys(settings.dataset_group).history(subject)
    return [json.loads(member)["item"] for member in redis_db.zrange(key, 0, -1)]


def test_a_json_clickstream_source_becomes_interactions(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    prepare_group(settings)
    topic = clickstream_topic(settings)
    open_sources(settings).create("clicks", topic, "json", CLICKS_MAPPING, CLICKS_SCHEMA)
    records = publish(
        settings,
        topic,
        [
            json.dumps(click(1, "product_view", 42, "i7")).encode(),
            json.dumps(click(2, "add_to_cart", 42, "i7")).encode(),
            json.dumps(click(3, "product_view", None, "i8")).encode(),  # anonymous: session
            json.dumps(click(4, "heartbeat", 42, "i7")).encode(),  # skipped
            json.dumps(click(5, "product_view", 43, "i9", timestamp="soon")).encode(),
            json.dumps(click(1, "product_view", 42, "i7")).encode(),  # a replayed duplicate
            b"{not json",
        ],
    )
    processor = processors(settings).sources[topic]
    report = processor.process(records)
    assert (report.appended, report.dead) == (3, 2)  # type: ignore[union-attr]
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert sorted((r["USER_ID"], r["ITEM_ID"], r["EVENT_TYPE"], r["TIMESTAMP"]) for r in rows) == [
        ("42", "i7", "cart", 1_700_000_002),
        ("42", "i7", "view", 1_700_000_001),
        ("sess-anon", "i8", "view", 1_700_000_003),
    ]
    assert history(redis_db, settings, Subject("u", "42")) == ["i7", "i7"]
    letters = read_topic(settings, settings.topics.deadletter)
    reasons = sorted(dict(m.headers or [])["streamrec.reason"] for m in letters)
    reasons = [r.decode() if isinstance(r, bytes) else r for r in reasons]
    assert len(reasons) == 2
    assert any(
        "source 'clicks' (version 1): sentAt: epoch_millis of path timestamp" in r for r in reasons
    )
    assert any(r.startswith("source 'clicks' (version 1):") and "JSON" in r for r in reasons)


def sources_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "sources", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"itemId": {"path": "products[0].code"}}, "products[0].code is not in the topic's schema"),
        ({"userId": {"path": "visitor.account.id"}}, "userId: path visitor.account.id is long"),
        ({"sentAt": {"path": "timestamp", "convert": "iso8601"}}, "convert iso8601 cannot take"),
        ({"eventType": {"path": "event", "convert": "shout"}}, "convert must be one of"),
        ({"sentAt": None}, "required fields are not mapped: sentAt"),
    ],
)
def test_a_mapping_is_refused_at_creation_with_the_reason(
    settings: ConnectorSettings,
    service_env: dict[str, str],
    tmp_path: Path,
    change: dict[str, Any],
    message: str,
) -> None:
    topic = clickstream_topic(settings)
    fields = {**CLICKS_MAPPING["fields"], **change}  # type: ignore[dict-item]
    mapping = {**CLICKS_MAPPING, "fields": {k: v for k, v in fields.items() if v is not None}}
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    (tmp_path / "schema.json").write_text(json.dumps(CLICKS_SCHEMA))
    env = {**service_env, "STREAMREC_SOURCES_TOPIC": f"_sources.{settings.dataset_group}"}
    args = ["create", "clicks", "--topic", topic, "--format", "avro"]
    args += ["--map", str(tmp_path / "map.json"), "--schema", str(tmp_path / "schema.json")]
    refused = sources_cli(args, env)
    assert refused.returncode == 1, refused.stdout
    assert message in refused.stderr and "Traceback" not in refused.stderr
    assert sources_cli(["list"], env).stdout.startswith("no sources")


def test_a_source_needs_an_existing_topic_and_a_free_name(
    settings: ConnectorSettings, service_env: dict[str, str], tmp_path: Path
) -> None:
    topic = clickstream_topic(settings)
    (tmp_path / "map.json").write_text(json.dumps(CLICKS_MAPPING))
    env = {**service_env, "STREAMREC_SOURCES_TOPIC": f"_sources.{settings.dataset_group}"}
    create = ["create", "clicks", "--format", "json", "--map", str(tmp_path / "map.json")]
    missing = sources_cli([*create, "--topic", "no.such.topic"], env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert sources_cli([*create, "--topic", topic], env).returncode == 0
    again = sources_cli([*create, "--topic", topic], env)
    assert again.returncode == 1 and "already exists" in again.stderr
    listed = sources_cli(["list"], env).stdout.split()
    assert listed[:5] == ["clicks", topic, "json", "events", "v1"]


def test_an_items_source_upserts_the_catalogue(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    prepare_group(settings)
    topic = f"shop.products.{settings.dataset_group}"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, 1)])
    mapping = {
        "target": "items",
        "skip": [{"path": "status", "equals": "draft"}],
        "fields": {
            "itemId": {"path": "sku"},
            "properties.title": {"path": "name"},
            "properties.genres": {"path": "category.path"},
            "properties.creationTimestamp": {"path": "created", "convert": "iso8601"},
        },
    }
    open_sources(settings).create("products", topic, "json", mapping, None)
    products = [
        {
            "sku": "i1",
            "name": "Heat",
            "category": {"path": "Crime|Drama"},
            "created": "2023-11-14T22:13:20Z",
            "status": "live",
        },
        {
            "sku": "i2",
            "name": "Draft",
            "category": {"path": "x"},
            "created": "2023-11-14T22:13:20Z",
            "status": "draft",
        },
        {"sku": "i3", "name": "Bad date", "category": {"path": "x"}, "created": "yesterday"},
    ]
    records = publish(settings, topic, [json.dumps(p).encode() for p in products])
    report = processors(settings).sources[topic].process(records)
    assert (report.upserted, report.dead) == (1, 1)  # type: ignore[union-attr]
    stored = redis_db.hgetall(Keys(settings.dataset_group).item("i1"))
    assert stored == {
        b"ITEM_ID": b"i1",
        b"TITLE": b"Heat",
        b"GENRES": b"Crime|Drama",
        b"CREATION_TIMESTAMP": b"1700000000",
    }
    assert not redis_db.exists(Keys(settings.dataset_group).item("i2"))
    rows = decode_rows(settings, read_topic(settings, settings.topics.items_dataset))
    assert [row["ITEM_ID"] for row in rows] == ["i1"]
    letters = read_topic(settings, settings.topics.deadletter)
    assert len(letters) == 1
