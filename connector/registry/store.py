"""The registry's durable store: a single-partition compacted Kafka topic.

Why Kafka and not Redis: Redis holds only derived, rebuildable serving state in streamrec,
while a schema is a source of truth that every event is validated against; Kafka already
keeps the Interactions dataset durably and replicated, so schemas live beside it (the same
choice Confluent Schema Registry makes). Each record is keyed by group/dataset/version, so
compaction never drops a version.

Writers serialise through one Kafka transactional id: `init_transactions` fences any other
registrar that is between reading and writing, so two registrations can never claim the same
version. A record's offset is its schema id: unique, assigned by the broker, never reused.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from connector.exceptions import ConcurrentRegistrationError, KafkaUnavailableError
from connector.kafka_admin import TopicSpec, ensure_topics

_TRANSACTIONAL_ID = "streamrec-schema-registry"


@dataclass(frozen=True)
class LogRecord:
    """One record of the store: its offset (the schema id), key and value."""

    offset: int
    key: str
    value: bytes


class SchemaLog:
    """Reads and appends registry records in the compacted topic `topic`."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        replication_factor: int = -1,
        timeout: float = 30.0,
    ) -> None:
        self._config = kafka_config
        self._topic = topic
        self._timeout = timeout
        spec = TopicSpec(topic, 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"})
        ensure_topics(kafka_config, [spec], replication_factor, timeout)

    def read_from(self, start: int) -> list[LogRecord]:
        """Every committed record at or after offset `start`, up to the end at call time."""
        consumer = Consumer(
            {
                **self._config,
                "group.id": f"streamrec-registry-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            return self._drain(consumer, start)
        finally:
            consumer.close()

    def _drain(self, consumer: Consumer, start: int) -> list[LogRecord]:
        partition = TopicPartition(self._topic, 0)
        _, end = consumer.get_watermark_offsets(partition, timeout=self._timeout)
        if start >= end:
            return []
        consumer.assign([TopicPartition(self._topic, 0, start)])
        records: list[LogRecord] = []
        deadline = time.monotonic() + self._timeout
        # Transaction markers occupy offsets but are never delivered, so the end is reached
        # when the consumer's position passes `end`, not when a message at `end - 1` arrives.
        while consumer.position([partition])[0].offset < end:
            message = consumer.poll(0.1)
            if message is not None:
                records.append(self._record(message))
            elif time.monotonic() > deadline:
                raise KafkaUnavailableError(f"timed out reading {self._topic}")
        return records

    def _record(self, message: Any) -> LogRecord:
        if message.error():
            raise KafkaUnavailableError(f"reading {self._topic}: {message.error()}")
        return LogRecord(message.offset(), message.key().decode(), message.value())

    @contextmanager
    def exclusive(self) -> Iterator[SchemaWriter]:
        """Fence other registrars; whatever is read inside is not changed by them before commit."""
        producer = Producer(
            {**self._config, "transactional.id": _TRANSACTIONAL_ID, "enable.idempotence": True}
        )
        try:
            producer.init_transactions(self._timeout)
        except KafkaException as exc:
            raise KafkaUnavailableError(f"schema registry transaction: {exc}") from exc
        yield SchemaWriter(producer, self._topic, self._timeout)


class SchemaWriter:
    """Appends one record in its own transaction; created only by `SchemaLog.exclusive`."""

    def __init__(self, producer: Producer, topic: str, timeout: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout

    def append(self, key: str, value: bytes) -> int:
        """Write one record and commit; returns its offset. Raises if another writer fenced us."""
        offsets: list[int] = []

        def delivered(err: Any, message: Any) -> None:
            if err is None:
                offsets.append(message.offset())

        try:
            self._producer.begin_transaction()
            self._producer.produce(self._topic, value=value, key=key, on_delivery=delivered)
            self._producer.commit_transaction(self._timeout)
        except KafkaException as exc:
            if exc.args[0].fatal() or exc.args[0].txn_requires_abort():
                raise ConcurrentRegistrationError(
                    f"another registrar wrote to {self._topic} at the same time: {exc}"
                ) from exc
            raise KafkaUnavailableError(f"writing {self._topic}: {exc}") from exc
        return offsets[0]
