"""A small durable key-value log: a single-partition compacted Kafka topic.

Used for the sources of truth that are not events (schemas, trackers): Kafka keeps them
durably and replicated beside the Interactions dataset, while Redis holds only rebuildable
serving state. Each log's writers share one Kafka transactional id: `init_transactions`
fences any other writer that is between reading and writing, so a read-check-write inside
`exclusive()` cannot interleave with another process's. A record's offset is unique and
assigned by the broker, so it can serve as an id. A value of None is a tombstone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from connector.backoff import Backoff
from connector.exceptions import ConcurrentWriteError, KafkaUnavailableError
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.settings import CommonSettings

# What a just-created topic answers until its partition exists and has a leader.
_NOT_READY_YET = (
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
)


@dataclass(frozen=True)
class LogRecord:
    """One record of the log: its offset, key and value (None for a tombstone)."""

    offset: int
    key: str
    value: bytes | None


class CompactedLog:
    """Reads and appends records of the compacted topic `topic`."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        transactional_id: str,
        replication_factor: int = -1,
        timeout: float = 30.0,
    ) -> None:
        self._config = kafka_config
        self._topic = topic
        self._transactional_id = transactional_id
        self._timeout = timeout
        spec = TopicSpec(topic, 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"})
        ensure_topics(kafka_config, [spec], replication_factor, timeout)

    def read_from(self, start: int) -> list[LogRecord]:
        """Every committed record at or after offset `start`, up to the end at call time."""
        consumer = Consumer(
            {
                **self._config,
                "group.id": f"streamrec-log-reader-{uuid.uuid4().hex}",
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
        end = self._end_offset(consumer, partition)
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

    def _end_offset(self, consumer: Consumer, partition: TopicPartition) -> int:
        """The high watermark; a topic created a moment ago may not be known yet, or its
        partition may have no leader yet: wait, up to the timeout."""
        delays = Backoff(first=0.1, most=0.1, seconds=self._timeout).delays()
        while True:
            try:
                return int(consumer.get_watermark_offsets(partition, timeout=self._timeout)[1])
            except KafkaException as exc:
                if exc.args[0].code() not in _NOT_READY_YET:
                    raise KafkaUnavailableError(f"reading {self._topic}: {exc}") from exc
                delay = next(delays, None)
                if delay is None:
                    raise KafkaUnavailableError(
                        f"{self._topic} partition 0 is not ready: {exc}"
                    ) from exc
                time.sleep(delay)

    def _record(self, message: Any) -> LogRecord:
        if message.error():
            raise KafkaUnavailableError(f"reading {self._topic}: {message.error()}")
        return LogRecord(message.offset(), message.key().decode(), message.value())

    @contextmanager
    def exclusive(self) -> Iterator[LogWriter]:
        """Fence other writers; what is read inside is not changed by them before commit."""
        producer = Producer(
            {
                **self._config,
                "transactional.id": self._transactional_id,
                "enable.idempotence": True,
            }
        )
        try:
            producer.init_transactions(self._timeout)
        except KafkaException as exc:
            raise KafkaUnavailableError(f"{self._topic} transaction: {exc}") from exc
        yield LogWriter(producer, self._topic, self._timeout)


class LogWriter:
    """Appends one record per transaction; created only by `CompactedLog.exclusive`."""

    def __init__(self, producer: Producer, topic: str, timeout: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout

    def append(self, key: str, value: bytes | None) -> int:
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
                raise ConcurrentWriteError(
                    f"another writer wrote to {self._topic} at the same time: {exc}"
                ) from exc
            raise KafkaUnavailableError(f"writing {self._topic}: {exc}") from exc
        return offsets[0]


def settings_log(settings: CommonSettings, topic: str, transactional_id: str) -> CompactedLog:
    """The compacted log `topic` on the settings' Kafka (created on first use)."""
    return CompactedLog(
        settings.kafka_config(), topic, transactional_id, settings.kafka_replication_factor
    )
