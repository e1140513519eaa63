"""The dataset writer confirms every record before it returns, and reports the ones the
broker refuses (its producer asks for delivery reports of failures only)."""

from __future__ import annotations

import os
import uuid

import pytest

from connector.exceptions import KafkaUnavailableError
from connector.ingest.writer import DatasetWriter
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.records import DeadLetter, SourceRecord
from connector.settings import ConnectorSettings
from tests.integration.helpers import read_topic

pytestmark = pytest.mark.single_redis  # Kafka only


def _letter(offset: int, size: int) -> DeadLetter:
    value = os.urandom(size)  # incompressible: the producer compresses with lz4
    return DeadLetter(SourceRecord("events", 0, offset, b"k", value), "bad")


def test_records_the_broker_refuses_fail_the_write(settings: ConnectorSettings) -> None:
    small = f"small-{uuid.uuid4().hex[:8]}"  # refuses records above 2 KB
    ensure_topics(settings.kafka_config(), [TopicSpec(small, config={"max.message.bytes": "2048"})])
    writer = DatasetWriter(settings.kafka_config(), f"unused-{small}", small, timeout=20)

    writer.write([], [_letter(1, 100), _letter(2, 200)], 1, {})
    assert [m.offset for m in read_topic(settings, small)] == [0, 1]

    with pytest.raises(KafkaUnavailableError, match="MSG_SIZE_TOO_LARGE"):
        writer.write([], [_letter(3, 100), _letter(4, 50_000)], 1, {})
    writer.write([], [_letter(5, 100)], 1, {})  # the failure is not carried over
