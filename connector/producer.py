"""A small producer for applications: PutEvents, PutItems and PutUsers records to Kafka.

JSON is the default (what any Kafka client or `kcat` can send); Avro in the Confluent wire
format is smaller and schema-checked before it leaves the application. Records are keyed by
user (or session), so one user's events stay in order in one partition.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from confluent_kafka import Producer

from connector import wire
from connector.exceptions import KafkaUnavailableError
from connector.kafka_produce import produce
from connector.registry.registry import open_registry
from connector.registry.schema import ENVELOPE
from connector.settings import CommonSettings

Encoding = Literal["json", "avro"]


class EventProducer:
    """Publishes to one dataset group's event, item and user topics."""

    def __init__(self, settings: CommonSettings, encoding: Encoding = "json") -> None:
        self._topics = settings.topics
        self._producer = Producer(
            {**settings.kafka_config(), "enable.idempotence": True, "linger.ms": 5}
        )
        self._envelope = None
        if encoding == "avro":
            self._envelope = open_registry(settings).get(settings.dataset_group, ENVELOPE)

    def put_events(
        self,
        tracking_id: str,
        session_id: str,
        events: list[dict[str, Any]],
        user_id: str | None = None,
    ) -> None:
        """Queue one PutEvents record (1-10 events) for sending."""
        record: dict[str, Any] = {
            "trackingId": tracking_id,
            "sessionId": session_id,
            "userId": user_id,
            "eventList": events,
        }
        self._send(self._topics.events, user_id or session_id, self._encode(record))

    def put_items(self, items: list[dict[str, Any]]) -> None:
        """Queue one PutItems record: entries of {"itemId", "properties"}."""
        key = items[0]["itemId"] if items else ""
        self._send(self._topics.items, key, json.dumps({"items": items}).encode())

    def put_users(self, users: list[dict[str, Any]]) -> None:
        """Queue one PutUsers record: entries of {"userId", "properties"}."""
        key = users[0]["userId"] if users else ""
        self._send(self._topics.users, key, json.dumps({"users": users}).encode())

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged by the broker."""
        if self._producer.flush(timeout):
            raise KafkaUnavailableError("records still unacknowledged after flush")

    def _encode(self, record: dict[str, Any]) -> bytes:
        if self._envelope is None:
            return json.dumps({k: v for k, v in record.items() if v is not None}).encode()
        events = [_avro_event(event) for event in record["eventList"]]
        return wire.encode(
            self._envelope.id, self._envelope.parsed, {**record, "eventList": events}
        )

    def _send(self, topic: str, key: str, value: bytes) -> None:
        produce(self._producer, topic, value, key.encode())


def _avro_event(event: dict[str, Any]) -> dict[str, Any]:
    """Avro has no JSON-string properties: decode them to the map the envelope declares."""
    properties = event.get("properties")
    if isinstance(properties, str):
        return {**event, "properties": json.loads(properties)}
    return event
