"""The end-to-end demo at this stage: local services, registered schemas, one event validated.

Later issues grow it into the full demo (import, training, live recommendations); each step
is a plain function so the CLI stays thin and tests can call the steps directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

import schemas
from connector import redis_client
from connector.devservices import kafka as local_kafka
from connector.devservices import redis as local_redis
from connector.devservices.local import LocalServices
from connector.devservices.settings import DevSettings
from connector.exceptions import InvalidEventError, KafkaUnavailableError
from connector.ingest.rows import decode_json, interaction_rows
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.registry.registry import RegisteredSchema, open_registry
from connector.settings import CommonSettings

EXAMPLE_EVENTS = ("watch.json", "anonymous.json", "missing-item.json", "unknown-property.json")


@dataclass(frozen=True)
class Outcome:
    """What validation made of one published record."""

    offset: int
    rows: list[dict[str, Any]]
    reason: str | None


def ensure_services(common: CommonSettings, dev: DevSettings) -> LocalServices | None:
    """Start local Kafka and/or Redis where the configured ones do not answer (a Redis the
    machine already runs is used as it is); return the services if any were started."""
    answering = {
        "kafka": local_kafka.answers(common.kafka_bootstrap),
        "redis": local_redis.answers(common.redis_url),
    }
    missing = frozenset(name for name, ok in answering.items() if not ok)
    if not missing:
        return None
    services = LocalServices(dev, common)
    services.up(missing)
    return services


def register_examples(common: CommonSettings) -> list[RegisteredSchema]:
    """Register the shipped Interactions, Users and Items schemas in the dataset group."""
    registry = open_registry(common)
    return [
        registry.register(common.dataset_group, dataset, schemas.load(file))
        for dataset, file in schemas.DATASET_FILES.items()
    ]


def publish_examples(common: CommonSettings) -> list[int]:
    """Publish the example PutEvents records as JSON, keyed by user; return their offsets."""
    topic = common.topics.events
    ensure_topics(common.kafka_config(), [TopicSpec(topic)], common.kafka_replication_factor)
    producer = Producer({**common.kafka_config(), "enable.idempotence": True})
    offsets: list[int] = []

    def delivered(err: Any, message: Any) -> None:
        if err is not None:
            raise KafkaUnavailableError(f"publishing to {topic}: {err}")
        offsets.append(message.offset())

    for name in EXAMPLE_EVENTS:
        record = schemas.load(f"examples/events/{name}")
        key = (record.get("userId") or record["sessionId"]).encode()
        producer.produce(topic, json.dumps(record).encode(), key=key, on_delivery=delivered)
    producer.flush(30)
    return offsets


def read_and_validate(common: CommonSettings, offsets: list[int]) -> list[Outcome]:
    """Consume the published records back and validate each against the Interactions schema."""
    schema = open_registry(common).get(common.dataset_group, "interactions").spec
    consumer = Consumer(
        {**common.kafka_config(), "group.id": "streamrec-demo", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(common.topics.events, 0, min(offsets))])
    outcomes: list[Outcome] = []
    try:
        while len(outcomes) < len(offsets):
            message = consumer.poll(10)
            if message is None or message.error():
                raise KafkaUnavailableError(f"reading {common.topics.events}: no record in time")
            outcomes.append(_validate(message.offset(), message.value(), schema))
    finally:
        consumer.close()
    return outcomes


def _validate(offset: Any, raw: Any, schema: Any) -> Outcome:
    try:
        return Outcome(offset, interaction_rows(decode_json(raw), schema), None)
    except InvalidEventError as exc:
        return Outcome(offset, [], str(exc))


def describe(outcome: Outcome) -> str:
    """One line per record: the Interactions rows it became, or why it was rejected."""
    if outcome.reason is not None:
        return f"  offset {outcome.offset}: rejected -> {outcome.reason}"
    rows = "; ".join(json.dumps(row) for row in outcome.rows)
    return f"  offset {outcome.offset}: valid -> {rows}"


def run(
    common: CommonSettings, dev: DevSettings, say: Callable[[str], None], keep_running: bool
) -> list[Outcome]:
    """Every step of the demo, reporting progress and outcomes through `say`."""
    services = ensure_services(common, dev)
    say("Kafka " + common.kafka_bootstrap + " and Redis " + common.redis_url + " answer")
    try:
        for entry in register_examples(common):
            say(f"registered {entry.dataset} schema v{entry.version} (id {entry.id})")
        redis_client.connect(common)
        offsets = publish_examples(common)
        say(f"published {len(offsets)} PutEvents records to {common.topics.events}")
        outcomes = read_and_validate(common, offsets)
        for outcome in outcomes:
            say(describe(outcome))
        return outcomes
    finally:
        if services is not None and not keep_running:
            services.down()
            say("stopped the local Kafka and Redis this demo started")
