"""Producing without losing a record when librdkafka's local queue is full."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer


def produce(
    producer: Producer, topic: str, value: bytes | None, key: bytes | None, **options: Any
) -> None:
    """`producer.produce`, waiting for deliveries to drain while the local queue is full
    (BufferError) instead of failing: a long import or a large batch just slows down."""
    while True:
        try:
            producer.produce(topic, value, key, **options)
            return
        except BufferError:
            producer.poll(0.1)
