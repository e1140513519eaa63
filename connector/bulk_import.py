"""Bulk import of Personalize-format CSV files through the same topics and validation.

The CSV's header row holds schema field names (USER_ID, ITEM_ID, TIMESTAMP, ...), as in a
Personalize dataset import. Each interactions row becomes a one-event PutEvents record on the
events topic; items and users rows are grouped ten to a PutItems / PutUsers record. Every row
is published, so the connector validates it and dead-letters what fails, exactly as for live
events; the same checks also run here first, so the summary can say at once what will be
rejected and why.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connector.exceptions import InvalidEventError, KafkaUnavailableError, SchemaNotFoundError
from connector.ingest import limits
from connector.ingest.rows import interaction_row, metadata_row
from connector.kafka_produce import produce
from connector.registry.registry import open_registry
from connector.registry.rules import DatasetSchema
from connector.settings import ConnectorSettings

_SNAKE_PART = re.compile(r"_([a-z0-9])")
_EVENT_FIELDS = {
    "ITEM_ID": "itemId",
    "TIMESTAMP": "sentAt",
    "EVENT_TYPE": "eventType",
    "EVENT_VALUE": "eventValue",
    "RECOMMENDATION_ID": "recommendationId",
}
PLACEHOLDER_EVENT_TYPE = "interaction"  # eventType is required in PutEvents, not in CSV


@dataclass
class ImportSummary:
    """Rows seen, accepted by the local checks, and rejected with their reasons; and where
    the records went: the topic and, per partition, the offsets [first, end) written."""

    rows: int = 0
    accepted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    topic: str = ""
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        """Count one rejected row under `reason`."""
        self.reasons[reason] += 1

    def delivered(self, partition: int, offset: int) -> None:
        """Note one record written at `offset` of `partition`."""
        first, end = self.offsets.get(partition, (offset, offset + 1))
        self.offsets[partition] = (min(first, offset), max(end, offset + 1))

    @property
    def records(self) -> int:
        """Records published (an items or users record holds up to ten rows)."""
        return sum(end - first for first, end in self.offsets.values())


def property_key(name: str) -> str:
    """The camelCase property key of a schema field: NUM_RATINGS -> numRatings."""
    return _SNAKE_PART.sub(lambda match: match.group(1).upper(), name.lower())


def typed(schema: DatasetSchema, row: dict[str, str]) -> dict[str, Any]:
    """CSV text converted to the schema's field types; empty cells are absent."""
    values: dict[str, Any] = {}
    for name, text in row.items():
        spec = schema.field(name)
        if not text:
            values[name] = None
        elif spec is None:
            values[name] = text  # an unknown column: validation will name it
        else:
            values[name] = _convert(spec.type, text)
    return values


def _convert(avro_type: str, text: str) -> Any:
    try:
        if avro_type in ("int", "long"):
            return int(text)
        if avro_type in ("float", "double"):
            return float(text)
    except ValueError:
        return text  # left as text: validation names the field and the wrong value
    if avro_type == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def event_records(
    rows: Iterable[dict[str, str]],
    schema: DatasetSchema,
    tracking_id: str,
    summary: ImportSummary,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, PutEvents record) for each interactions row, checked like a live event."""
    for row in rows:
        values = typed(schema, row)
        user = str(values.get("USER_ID") or "")
        event = _event(values)
        record = {
            "trackingId": tracking_id,
            "userId": user or None,
            "sessionId": user or "-",
            "eventList": [event],
        }
        _check(summary, _event_row, event, user or None, schema)
        yield user, {k: v for k, v in record.items() if v is not None}


def _event(values: dict[str, Any]) -> dict[str, Any]:
    event = {key: values.get(name) for name, key in _EVENT_FIELDS.items()}
    event["eventType"] = event["eventType"] or PLACEHOLDER_EVENT_TYPE
    if values.get("IMPRESSION"):
        event["impression"] = str(values["IMPRESSION"]).split("|")
    if values.get("EVENT_ATTRIBUTION_SOURCE"):
        event["metricAttribution"] = {"eventAttributionSource": values["EVENT_ATTRIBUTION_SOURCE"]}
    reserved = {"USER_ID", "IMPRESSION", "EVENT_ATTRIBUTION_SOURCE", *_EVENT_FIELDS}
    properties = {
        property_key(name): value
        for name, value in values.items()
        if name not in reserved and value is not None
    }
    if properties:
        event["properties"] = properties
    return {key: value for key, value in event.items() if value is not None}


def metadata_records(
    rows: Iterable[dict[str, str]],
    schema: DatasetSchema,
    summary: ImportSummary,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, PutItems / PutUsers record) for every ten items or users rows."""
    id_field, id_key = ("ITEM_ID", "itemId") if schema.dataset == "items" else ("USER_ID", "userId")
    entries: list[dict[str, Any]] = []
    for row in rows:
        values = typed(schema, row)
        properties = {
            property_key(name): value
            for name, value in values.items()
            if name != id_field and value is not None
        }
        _check(summary, metadata_row, values.get(id_field), properties, schema)
        entries.append({id_key: values.get(id_field), "properties": properties})
        if len(entries) == limits.MAX_EVENTS_PER_RECORD:
            yield str(entries[0][id_key]), {schema.dataset: entries}
            entries = []
    if entries:
        yield str(entries[0][id_key]), {schema.dataset: entries}


def _event_row(event: dict[str, Any], user: str | None, schema: DatasetSchema) -> Any:
    return interaction_row(limits.check_event(event), user, event.get("impression"), schema)


def _check(summary: ImportSummary, check: Callable[..., Any], *args: Any) -> None:
    summary.rows += 1
    try:
        check(*args)
    except InvalidEventError as exc:
        summary.reject(str(exc))
        return
    summary.accepted += 1


def publish_rows(
    settings: ConnectorSettings,
    dataset: str,
    rows: Iterable[dict[str, str]],
    tracking_id: str,
) -> ImportSummary:
    """Publish Personalize-format rows of `dataset` to the group's topics (events, items,
    users), checking each the way the connector will; the connector validates them like
    live events. The summary also holds the offsets written, so a caller can wait for the
    connector to commit past them. Used by `streamrec import` and the demo."""
    schema = open_registry(settings).get(settings.dataset_group, dataset).spec
    if schema is None:
        raise SchemaNotFoundError(f"{dataset} is not a dataset schema")
    topic = input_topic(settings, dataset)
    summary = ImportSummary(topic=topic)
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if error is not None:
            failed.append(error)
        elif partition is not None and offset is not None:
            summary.delivered(partition, offset)

    records: Iterator[tuple[str, dict[str, Any]]]
    if dataset == "interactions":
        records = event_records(rows, schema, tracking_id, summary)
    else:
        records = metadata_records(rows, schema, summary)
    producer = Producer({**settings.kafka_config(), "enable.idempotence": True, "linger.ms": 20})
    for key, record in records:
        produce(producer, topic, json.dumps(record).encode(), key.encode(), on_delivery=on_delivery)
    if producer.flush(60):
        raise KafkaUnavailableError(f"some records to {topic} were not acknowledged")
    if failed:
        raise KafkaUnavailableError(
            f"{len(failed)} records to {topic} could not be written: {failed[0].str()}"
        )
    return summary


def input_topic(settings: ConnectorSettings, dataset: str) -> str:
    """The topic records of `dataset` are published to (interactions go as events)."""
    topics = settings.topics
    return {"interactions": topics.events, "items": topics.items, "users": topics.users}[dataset]
