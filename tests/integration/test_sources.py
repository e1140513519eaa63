"""Existing topics in their own shape: a source's mapping turns a web-analytics clickstream
(nested fields, millisecond timestamps) into events of the Interactions dataset, with the
event path's validation, dedup and dead letters; malformed mappings are refused at creation
by `streamrec sources create` with exit status 1."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.api.app import create_app
from connector.exceptions import SourceError
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.sources.store import open_sources
from connector.wiring import processors
from tests.integration.helpers import (
    decode_rows,
    history_items,
    prepare_group,
    read_topic,
    source_records,
)
from tests.integration.test_api import Server, api_settings

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
    return source_records(settings, topic)


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
    assert interactions(settings) == CLICKS_ROWS
    assert history_items(redis_db, settings.dataset_group, Subject("u", "42")) == ["i7", "i7"]
    letters = read_topic(settings, settings.topics.deadletter)
    reasons = sorted(dict(m.headers or [])["streamrec.reason"] for m in letters)
    reasons = [r.decode() if isinstance(r, bytes) else r for r in reasons]
    assert len(reasons) == 2
    assert any(
        "source 'clicks' (version 1): sentAt: epoch_millis of path timestamp" in r for r in reasons
    )
    assert any(r.startswith("source 'clicks' (version 1):") and "JSON" in r for r in reasons)


# The Interactions rows both clickstream tests expect: user 42's view and cart of i7, and
# an anonymous view of i8 attributed to its session.
CLICKS_ROWS = [
    ("42", "i7", "cart", 1_700_000_002),
    ("42", "i7", "view", 1_700_000_001),
    ("sess-anon", "i8", "view", 1_700_000_003),
]


def interactions(settings: ConnectorSettings) -> list[tuple[Any, ...]]:
    """The group's Interactions rows as sorted (user, item, type, time)."""
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    return sorted((r["USER_ID"], r["ITEM_ID"], r["EVENT_TYPE"], r["TIMESTAMP"]) for r in rows)


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


PRODUCTS_MAPPING = {
    "target": "items",
    "fields": {
        "itemId": {"path": "id", "convert": "string"},
        "properties.title": {"path": "name"},
        "properties.genres": {"path": "category"},
        "properties.creationTimestamp": {"path": "created_at", "convert": "epoch_millis"},
    },
}


def change(op: str, before: Any, after: Any, envelope: bool = False) -> bytes:
    """A Debezium change event of table inventory.products, as the JSON converter writes it
    (`envelope`: with schemas.enable, the schema beside the payload)."""
    payload = {
        "before": before,
        "after": after,
        "source": {"connector": "postgresql", "db": "shop", "table": "products"},
        "op": op,
        "ts_ms": 1_700_000_500_000,
    }
    value = (
        {"schema": {"type": "struct", "name": "Envelope"}, "payload": payload}
        if envelope
        else payload
    )
    return json.dumps(value).encode()


def product(n: int, name: str) -> dict[str, Any]:
    return {"id": n, "name": name, "category": "Crime", "created_at": 1_700_000_000_000 + 1000 * n}


def test_a_debezium_items_source_follows_the_table(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    """Snapshot reads, a create, an update, a delete and its tombstone: the Items dataset and
    the item hashes end as the table is; a record that is not a change event is dead-lettered."""
    prepare_group(settings)
    topic = f"shop.inventory.products.{settings.dataset_group}"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, 1)])
    open_sources(settings).create("products", topic, "debezium", PRODUCTS_MAPPING, None)
    values: list[bytes | None] = [
        change("r", None, product(1, "Heat"), envelope=True),
        change("r", None, product(2, "Ronin")),
        change("c", None, product(3, "Thief")),
        change("u", product(1, "Heat"), product(1, "Heat (1995)")),
        change("d", {"id": 2, "name": None, "category": None, "created_at": None}, None),
        None,  # the tombstone Debezium writes after a delete
        json.dumps({"id": 4, "name": "no op"}).encode(),
    ]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for n, value in enumerate(values):
        producer.produce(topic, key=json.dumps({"id": n}).encode(), value=value)
    assert producer.flush(30) == 0
    records = source_records(settings, topic)
    report = processors(settings).sources[topic].process(records)
    assert (report.upserted, report.deleted, report.dead) == (4, 1, 1)  # type: ignore[union-attr]
    keys = Keys(settings.dataset_group)
    assert redis_db.hgetall(keys.item("1"))[b"TITLE"] == b"Heat (1995)"
    assert not redis_db.exists(keys.item("2"))
    assert redis_db.hgetall(keys.item("3")) == {
        b"ITEM_ID": b"3",
        b"TITLE": b"Thief",
        b"GENRES": b"Crime",
        b"CREATION_TIMESTAMP": b"1700000003",
    }
    dataset = read_topic(settings, settings.topics.items_dataset)
    assert [(m.key, m.value is None) for m in dataset] == [
        (b"1", False),
        (b"2", False),
        (b"3", False),
        (b"1", False),
        (b"2", True),
    ]
    letters = read_topic(settings, settings.topics.deadletter)
    assert len(letters) == 1
    reason = dict(letters[0].headers or [])["streamrec.reason"]
    assert "not a Debezium change event" in (
        reason.decode() if isinstance(reason, bytes) else reason
    )


def test_a_debezium_source_maps_rows_to_items_or_users_only(settings: ConnectorSettings) -> None:
    with pytest.raises(SourceError, match="items or users"):
        open_sources(settings).create("x", "t", "debezium", CLICKS_MAPPING, None)


def test_an_avro_source_takes_serializer_records_through_the_embedded_registry(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    """A producer of an existing Avro topic keeps its code: its AvroSerializer registers the
    topic's writer schema with `streamrec api` (the subject `<topic>-value`, checked against
    the source's mapping) and the connector reads the records by that schema's id."""
    prepare_group(settings)
    topic = clickstream_topic(settings)
    open_sources(settings).create("clicks", topic, "avro", CLICKS_MAPPING, CLICKS_SCHEMA)
    subject = f"{topic}-value"
    with Server(create_app(api_settings(settings))) as api:
        client = SchemaRegistryClient({"url": api.base})
        missing_sku = copy.deepcopy(CLICKS_SCHEMA)
        product = missing_sku["fields"][4]["type"]["items"]
        product["fields"] = [f for f in product["fields"] if f["name"] != "sku"]
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(json.dumps(missing_sku), "AVRO"))
        serializer = AvroSerializer(client, json.dumps(CLICKS_SCHEMA))
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        context = SerializationContext(topic, MessageField.VALUE)
        for n, (event, account, sku) in enumerate(
            [("product_view", 42, "i7"), ("add_to_cart", 42, "i7"), ("product_view", None, "i8")]
        ):
            record = click(n + 1, event, account, sku)
            del record["page"]  # not in the topic's schema
            producer.produce(topic, value=serializer(record, context))
        assert producer.flush(30) == 0
        subjects = client.get_subjects()
    assert refused.value.http_status_code == 422
    assert "products[0].sku is not in the topic's schema" in refused.value.error_message
    assert subject in subjects
    records = source_records(settings, topic)
    report = processors(settings).sources[topic].process(records)
    assert (report.appended, report.dead) == (3, 0)  # type: ignore[union-attr]
    assert interactions(settings) == CLICKS_ROWS
