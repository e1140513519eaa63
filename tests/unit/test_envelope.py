"""The PutEvents envelope schema that producers encode Avro records with."""

from __future__ import annotations

import io

import fastavro
import pytest
from fastavro.validation import validate

import schemas
from tests.conftest import example

ENVELOPE = fastavro.parse_schema(schemas.load(schemas.ENVELOPE_FILE))


@pytest.mark.parametrize("name", ["watch.json", "anonymous.json", "unknown-property.json"])
def test_example_events_fit_the_envelope_and_round_trip(name: str) -> None:
    record = example(f"events/{name}")
    assert validate(record, ENVELOPE, raise_errors=False)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, ENVELOPE, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, ENVELOPE, ENVELOPE)
    assert decoded["eventList"][0]["itemId"] == record["eventList"][0]["itemId"]
    assert decoded.get("userId") == record.get("userId")


@pytest.mark.parametrize("missing", ["trackingId", "sessionId", "eventList"])
def test_envelope_requires_personalize_required_fields(missing: str) -> None:
    record = example("events/watch.json")
    del record[missing]
    assert not validate(record, ENVELOPE, raise_errors=False)


def test_event_without_event_type_does_not_fit() -> None:
    record = example("events/anonymous.json")
    del record["eventList"][0]["eventType"]
    assert not validate(record, ENVELOPE, raise_errors=False)


@pytest.mark.parametrize("dataset", sorted(schemas.DATASET_FILES))
def test_shipped_dataset_schemas_pass_the_rules(dataset: str) -> None:
    from connector.registry.rules import check_schema

    assert check_schema(dataset, schemas.load(schemas.DATASET_FILES[dataset])).dataset == dataset
