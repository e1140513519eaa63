"""The producer helper's JSON and Avro records are accepted by the ingest path."""

from __future__ import annotations

import json

import pytest

from connector.producer import EventProducer
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.wiring import event_processor
from tests.integration.helpers import decode_rows, prepare_group, read_topic

pytestmark = pytest.mark.single_redis  # Kafka only


@pytest.mark.parametrize("encoding", ["json", "avro"])
def test_producer_records_are_ingested(settings: ConnectorSettings, encoding: str) -> None:
    tracking_id = prepare_group(settings)
    processor = event_processor(settings)  # registers the PutEvents envelope schema
    producer = EventProducer(settings, encoding)  # type: ignore[arg-type]
    producer.put_events(
        tracking_id,
        "s1",
        [
            {
                "eventId": "e1",
                "eventType": "watch",
                "itemId": "i1",
                "sentAt": 1_700_000_000,
                "eventValue": 2.5,
                "properties": '{"device": "tv"}',
                "impression": ["i1", "i2"],
                "metricAttribution": {"eventAttributionSource": "email"},
            }
        ],
        user_id="u1",
    )
    producer.put_events(
        tracking_id, "s2", [{"eventType": "click", "itemId": "i2", "sentAt": 1_700_000_001}]
    )
    producer.flush()
    consumed = read_topic(settings, settings.topics.events)
    assert all((m.value or b" ")[0] == (0 if encoding == "avro" else ord("{")) for m in consumed)
    records = [
        SourceRecord(settings.topics.events, m.partition, m.offset, m.key, m.value)
        for m in consumed
    ]
    assert processor.process(records).appended == 2
    rows = {
        row["ITEM_ID"]: row
        for row in decode_rows(settings, read_topic(settings, settings.topics.interactions))
    }
    assert rows["i1"]["USER_ID"] == "u1" and rows["i1"]["DEVICE"] == "tv"
    assert rows["i1"]["IMPRESSION"] == "i1|i2" and rows["i1"]["EVENT_ATTRIBUTION_SOURCE"] == "email"
    assert rows["i2"]["USER_ID"] == "s2"


def test_a_plain_kcat_producer_of_json_works(settings: ConnectorSettings) -> None:
    """The docs/producing.md recipe: kcat -P with a '|' key delimiter, nothing else."""
    import subprocess

    tracking_id = prepare_group(settings)
    record = {
        "trackingId": tracking_id,
        "userId": "user123",
        "sessionId": "s1",
        "eventList": [{"eventType": "click", "itemId": "item-42", "sentAt": 1700000000}],
    }
    line = "user123|" + json.dumps(record)
    subprocess.run(
        ["kcat", "-P", "-b", settings.kafka_bootstrap, "-t", settings.topics.events, "-K", "|"],
        input=line + "\n",
        text=True,
        check=True,
        timeout=60,
    )
    consumed = read_topic(settings, settings.topics.events)
    assert [m.key for m in consumed] == [b"user123"]
    records = [
        SourceRecord(settings.topics.events, m.partition, m.offset, m.key, m.value)
        for m in consumed
    ]
    assert event_processor(settings).process(records).appended == 1
