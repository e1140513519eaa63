"""Producer code written for a Schema Registry publishes to streamrec unchanged: confluent-kafka's
own `SchemaRegistryClient` and `AvroSerializer`, pointed at `streamrec api`, register their
writer schema there and produce to the real broker; the connector reads the records as the
PutEvents envelope by Avro schema resolution."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

import schemas
from connector.api.app import create_app
from connector.keys import Subject
from connector.registry.registry import open_registry
from connector.settings import ConnectorSettings
from connector.wiring import event_processor
from tests.integration.helpers import (
    decode_rows,
    history_items,
    prepare_group,
    read_topic,
    source_records,
)
from tests.integration.test_api import Server, api_settings
from tests.unit.test_resolution import shop_writer

pytestmark = pytest.mark.integration

T0 = 1_700_000_000
DATASETS = ("interactions", "items", "putevents", "users")


def registry_api(settings: ConnectorSettings, **overrides: Any) -> Server:
    """`streamrec api` of the settings' group, served from a thread of the test."""
    return Server(create_app(api_settings(settings, **overrides)))


def produce(
    settings: ConnectorSettings, serializer: AvroSerializer, records: list[dict[str, Any]]
) -> None:
    """`records` through the serializer to the events topic, keyed by user, as a producer
    application would send them; waits for the broker's acknowledgements."""
    topic = settings.topics.events
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    context = SerializationContext(topic, MessageField.VALUE)
    for record in records:
        key = (record.get("userId") or record["sessionId"]).encode()
        producer.produce(topic, key=key, value=serializer(record, context))
    assert producer.flush(30) == 0


def ingest(settings: ConnectorSettings, tracking_id: str) -> tuple[int, int]:
    """Everything on the events topic through the connector's event processor: (appended,
    dead)."""
    processor = event_processor(settings)
    report = processor.process(source_records(settings, settings.topics.events))
    return report.appended, report.dead


def shop_click(tracking_id: str, user: str, item: str, sent_at: int) -> dict[str, Any]:
    return {
        "trackingId": tracking_id,
        "userId": user,
        "sessionId": f"s-{user}",
        "pageUrl": f"/p/{item}",
        "eventList": [{"eventType": "click", "productId": item, "sentAt": sent_at, "position": 1}],
    }


def test_an_avro_serializer_with_the_envelope_schema_publishes_through_the_api(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    tracking_id = prepare_group(settings)
    event_processor(settings)  # registers the envelope, as `streamrec init` does
    envelope = json.dumps(schemas.load(schemas.ENVELOPE_FILE))
    with registry_api(settings) as server:
        client = SchemaRegistryClient({"url": server.base})
        serializer = AvroSerializer(client, envelope)
        produce(
            settings,
            serializer,
            [
                {
                    "trackingId": tracking_id,
                    "userId": "u1",
                    "sessionId": "s1",
                    "eventList": [
                        {"eventType": "watch", "itemId": "i1", "sentAt": T0, "eventValue": 2.5},
                        {"eventType": "click", "itemId": "i2", "sentAt": T0 + 1},
                    ],
                }
            ],
        )
        subject = f"{settings.topics.events}-value"
        latest = client.get_latest_version(subject)
        assert client.get_subjects() == sorted(
            [subject, *(f"{settings.dataset_group}-{d}-value" for d in DATASETS)]
        )
    assert ingest(settings, tracking_id) == (2, 0)
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert sorted((r["USER_ID"], r["ITEM_ID"], r["EVENT_TYPE"], r["TIMESTAMP"]) for r in rows) == [
        ("u1", "i1", "watch", T0),
        ("u1", "i2", "click", T0 + 1),
    ]
    assert history_items(redis_db, settings.dataset_group, Subject("u", "u1")) == ["i1", "i2"]
    assert latest.version == 1 and json.loads(latest.schema.schema_str) == json.loads(envelope)


def test_a_writer_schema_of_the_producers_own_shape_is_resolved(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    """Another record name, an extra field at two levels and `productId` declared as an
    alias of itemId: registered, produced, read as the envelope."""
    tracking_id = prepare_group(settings)
    event_processor(settings)
    with registry_api(settings) as server:
        client = SchemaRegistryClient({"url": server.base})
        schema = Schema(json.dumps(shop_writer()), "AVRO")
        subject = f"{settings.topics.events}-value"
        assert client.test_compatibility(subject, schema) is True
        serializer = AvroSerializer(client, json.dumps(shop_writer()))
        produce(
            settings,
            serializer,
            [
                shop_click(tracking_id, "u1", "i7", T0),
                shop_click(tracking_id, "u2", "i8", T0 + 5),
                shop_click("wrong-tracker", "u3", "i9", T0 + 6),
            ],
        )
        registered = client.lookup_schema(subject, schema)
        assert json.loads(client.get_schema(registered.schema_id).schema_str) == shop_writer()
    assert ingest(settings, tracking_id) == (2, 1)
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert sorted((r["USER_ID"], r["ITEM_ID"], r["TIMESTAMP"]) for r in rows) == [
        ("u1", "i7", T0),
        ("u2", "i8", T0 + 5),
    ]
    assert history_items(redis_db, settings.dataset_group, Subject("u", "u1")) == ["i7"]
    assert history_items(redis_db, settings.dataset_group, Subject("u", "u3")) == []
    letters = read_topic(settings, settings.topics.deadletter)
    assert len(letters) == 1
    headers = dict(letters[0].headers or [])
    reason = headers.get("streamrec.reason", b"")
    assert "tracking" in (reason.decode() if isinstance(reason, bytes) else reason).lower()


def test_a_writer_schema_that_cannot_be_read_is_refused_and_nothing_is_published(
    settings: ConnectorSettings,
) -> None:
    prepare_group(settings)
    event_processor(settings)
    unreadable = copy.deepcopy(shop_writer())
    unreadable["fields"][4]["type"]["items"]["fields"][2]["name"] = "timestamp"  # sentAt, unsaid
    with registry_api(settings) as server:
        client = SchemaRegistryClient({"url": server.base})
        subject = f"{settings.topics.events}-value"
        assert client.test_compatibility(subject, Schema(json.dumps(unreadable), "AVRO")) is False
        serializer = AvroSerializer(client, json.dumps(unreadable))
        with pytest.raises(SchemaRegistryError) as refused:
            produce(settings, serializer, [shop_click("t", "u1", "i1", T0)])
        assert refused.value.http_status_code == 409 and refused.value.error_code == 409
        assert "sentAt" in refused.value.error_message
        with pytest.raises(SchemaRegistryError) as invalid:
            client.register_schema(subject, Schema('{"type": "record"}', "AVRO"))
        assert invalid.value.error_code == 42201
        with pytest.raises(SchemaRegistryError) as unknown:
            client.get_latest_version("other-topic-value")
        assert unknown.value.error_code == 40401
    assert read_topic(settings, settings.topics.events) == []


def test_dataset_subjects_hold_the_dataset_schemas_under_personalizes_rules(
    settings: ConnectorSettings,
) -> None:
    prepare_group(settings)
    with registry_api(settings) as server:
        client = SchemaRegistryClient({"url": server.base})
        subject = f"{settings.dataset_group}-interactions-value"
        current = client.get_latest_version(subject)
        assert json.loads(current.schema.schema_str) == schemas.load("interactions.avsc")
        breaking = schemas.load("interactions.avsc")
        breaking["fields"] = [f for f in breaking["fields"] if f["name"] != "TIMESTAMP"]
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(json.dumps(breaking), "AVRO"))
        assert refused.value.error_code in (409, 42201)
        assert "TIMESTAMP" in refused.value.error_message


def test_with_api_keys_the_registry_takes_the_key_as_basic_auth(
    settings: ConnectorSettings,
) -> None:
    prepare_group(settings)
    event_processor(settings)
    envelope = json.dumps(schemas.load(schemas.ENVELOPE_FILE))
    with registry_api(settings, api_keys="k-right") as server:
        subject = f"{settings.topics.events}-value"
        wrong = SchemaRegistryClient({"url": server.base, "basic.auth.user.info": "app:k-wrong"})
        with pytest.raises(SchemaRegistryError) as refused:
            wrong.register_schema(subject, Schema(envelope, "AVRO"))
        assert refused.value.http_status_code == 401
        right = SchemaRegistryClient({"url": server.base, "basic.auth.user.info": "app:k-right"})
        assert right.register_schema(subject, Schema(envelope, "AVRO")) > 0
        assert right.get_versions(subject) == [1]


def test_with_an_external_schema_registry_the_schemas_live_there(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    """STREAMREC_SCHEMA_REGISTRY_URL set: `schemas register`, the connector's envelope, the
    producer's writer schema and the dataset rows' ids all use that registry, and nothing is
    written to streamrec's own schemas topic. The registry here is another streamrec API
    with a schemas topic of its own, reached through confluent-kafka's client."""
    own_topic = settings.model_copy(update={"schemas_topic": f"_sr.{settings.dataset_group}"})
    with registry_api(own_topic) as external:
        configured = settings.model_copy(update={"schema_registry_url": external.base})
        tracking_id = prepare_group(configured)
        event_processor(configured)  # registers the envelope there
        client = SchemaRegistryClient({"url": external.base})
        produce(
            configured,
            AvroSerializer(client, json.dumps(shop_writer())),
            [shop_click(tracking_id, "u1", "i7", T0), shop_click(tracking_id, "u2", "i8", T0 + 1)],
        )
        assert ingest(configured, tracking_id) == (2, 0)
        rows = decode_rows(configured, read_topic(settings, settings.topics.interactions))
        listed = open_registry(configured).list(settings.dataset_group)
    assert sorted((r["USER_ID"], r["ITEM_ID"]) for r in rows) == [("u1", "i7"), ("u2", "i8")]
    assert history_items(redis_db, settings.dataset_group, Subject("u", "u2")) == ["i8"]
    assert sorted(entry.dataset for entry in listed) == sorted(DATASETS)
    assert open_registry(settings).list(settings.dataset_group) == []
