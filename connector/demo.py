"""The connector's half of `streamrec demo`: local services, the dataset group (schemas,
tracker, filters), the example events validated, and rows imported through the topics.

The demo itself (worker/demo/run.py) trains a model, so it lives in the worker; these steps
touch only what the connector owns. Each is a plain function, so tests can call it directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

import schemas
from connector.devservices import kafka as local_kafka
from connector.devservices import redis as local_redis
from connector.devservices.local import LocalServices
from connector.devservices.settings import DevSettings
from connector.exceptions import FilterError, KafkaUnavailableError, SchemaNotFoundError
from connector.filters.store import open_filters
from connector.ingest import plan as planner
from connector.ingest.rows import decode_json
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.records import BatchPlan, SourceRecord
from connector.registry.registry import open_registry
from connector.registry.schema import RegisteredSchema
from connector.settings import CommonSettings
from connector.trackers import open_trackers

EXAMPLE_EVENTS = ("watch.json", "anonymous.json", "missing-item.json", "unknown-property.json")
FILTERS = {
    # Personalize's "unwatched" recipe, and a genre picked per request through $GENRE.
    "not-watched": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("rating")',
    "by-genre": "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
}


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
    services = LocalServices(dev, common, scope=missing)  # its `down` stops only these
    services.up()
    return services


def register_examples(common: CommonSettings) -> list[RegisteredSchema]:
    """Register the shipped Interactions, Users and Items schemas in the dataset group."""
    registry = open_registry(common)
    return [
        registry.register(common.dataset_group, dataset, schemas.load(file))
        for dataset, file in schemas.DATASET_FILES.items()
    ]


def demo_tracker(common: CommonSettings) -> str:
    """The dataset group's tracking id, creating the tracker on the first run."""
    trackers = open_trackers(common)
    tracker = trackers.of_group(common.dataset_group)
    return (tracker or trackers.create(common.dataset_group)).tracking_id


def publish_examples(common: CommonSettings, tracking_id: str) -> list[int]:
    """Publish the example PutEvents records as JSON under `tracking_id`, keyed by user;
    return their offsets."""
    topic = common.topics.events
    ensure_topics(common.kafka_config(), [TopicSpec(topic)], common.kafka_replication_factor)
    producer = Producer({**common.kafka_config(), "enable.idempotence": True})
    offsets: list[int] = []

    def delivered(err: Any, message: Any) -> None:
        if err is not None:
            raise KafkaUnavailableError(f"publishing to {topic}: {err}")
        offsets.append(message.offset())

    for name in EXAMPLE_EVENTS:
        record = {**schemas.load(f"examples/events/{name}"), "trackingId": tracking_id}
        key = (record.get("userId") or record["sessionId"]).encode()
        producer.produce(topic, json.dumps(record).encode(), key=key, on_delivery=delivered)
    producer.flush(30)
    return offsets


def read_and_validate(
    common: CommonSettings, tracking_id: str, offsets: list[int]
) -> list[Outcome]:
    """Consume the published records back and check each the way the connector does."""
    schema = open_registry(common).get(common.dataset_group, "interactions").spec
    if schema is None:
        raise SchemaNotFoundError("the interactions schema is not a dataset schema")
    context = planner.PlanContext(tracking_id, schema, decode_json)
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
            received: Any = message  # a delivered message always has topic, partition, offset
            source = SourceRecord(
                received.topic(),
                received.partition(),
                received.offset(),
                received.key(),
                received.value(),
            )
            outcomes.append(_validate(source, context))
    finally:
        consumer.close()
    return outcomes


def _validate(source: SourceRecord, context: planner.PlanContext) -> Outcome:
    """The connector's own planning step on one record (no Redis state: nothing stitched,
    no served lists), so the demo shows exactly what the connector would accept."""
    plan = BatchPlan()
    envelopes = planner.open_envelopes([source], context, plan)
    planner.plan_events(envelopes, context, {}, {}, plan)
    reason = "; ".join(letter.reason for letter in plan.dead) or None
    return Outcome(source.offset, [event.row for event in plan.accepted], reason)


def describe(outcome: Outcome) -> str:
    """One line per record: the Interactions rows it became, or why it was rejected."""
    if outcome.reason is not None:
        return f"  offset {outcome.offset}: rejected -> {outcome.reason}"
    rows = "; ".join(json.dumps(row) for row in outcome.rows)
    return f"  offset {outcome.offset}: valid -> {rows}"


def create_filters(common: CommonSettings) -> list[str]:
    """The demo's named filters, created unless the group has them already; their names."""
    store = open_filters(common)
    existing = {named.name for named in store.list()}
    for name, expression in FILTERS.items():
        if name not in existing:
            try:
                store.create(name, expression)
            except FilterError:  # created by a concurrent run in the meantime
                if name not in {named.name for named in store.list()}:
                    raise
    return list(FILTERS)
