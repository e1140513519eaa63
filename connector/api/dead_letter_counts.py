"""The group's dead letters counted by the topic their record came from, for the dashboard's
sources: every dead letter carries its origin in a `streamrec.topic` header, so the counts
are exact, and each refresh reads only what was appended since the last one."""

from __future__ import annotations

import threading
import time
from collections import Counter

from confluent_kafka import Consumer, TopicPartition

from connector.settings import ConnectorSettings

ORIGIN_HEADER = "streamrec.topic"


class DeadLetterCounts:
    """Dead letters by origin topic, read incrementally from the dead-letter topic."""

    def __init__(self, settings: ConnectorSettings, timeout: float = 5.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._next: dict[int, int] = {}  # partition -> next offset to read
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def by_origin(self) -> dict[str, int]:
        """Dead letters per origin topic, after reading what was appended since last time."""
        with self._lock:
            consumer = Consumer(
                {
                    **self._settings.kafka_config(),
                    "group.id": "streamrec-dashboard",
                    "enable.auto.commit": False,
                }
            )
            try:
                self._read_new(consumer)
            finally:
                consumer.close()
            return dict(self._counts)

    def _read_new(self, consumer: Consumer) -> None:
        topic = self._settings.topics.deadletter
        listed = consumer.list_topics(timeout=self._timeout).topics
        if topic not in listed or listed[topic].error is not None:
            return
        for partition in sorted(listed[topic].partitions):
            self._read_partition(consumer, TopicPartition(topic, partition))

    def _read_partition(self, consumer: Consumer, partition: TopicPartition) -> None:
        low, high = consumer.get_watermark_offsets(partition, timeout=self._timeout)
        start = max(low, self._next.get(partition.partition, low))
        if start >= high:
            return
        consumer.assign([TopicPartition(partition.topic, partition.partition, start)])
        deadline = time.monotonic() + self._timeout
        position = start
        while position < high and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            position = (message.offset() or position) + 1
            origin = _origin(message.headers() or [])
            if origin is not None:
                self._counts[origin] += 1
        self._next[partition.partition] = position


def _origin(headers: object) -> str | None:
    pairs = headers.items() if isinstance(headers, dict) else headers
    for key, value in pairs:  # type: ignore[attr-defined]
        if key == ORIGIN_HEADER and value is not None:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None
