"""A producer's writer schema read as the PutEvents envelope: Avro schema resolution with
the aliases the writer declares (connector/registry/resolution.py)."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest

import schemas
from connector.exceptions import IncompatibleSchemaError
from connector.registry.compatibility import check_readable
from connector.registry.resolution import reader_for
from connector.registry.schema import ENVELOPE, RegisteredSchema

ENVELOPE_SCHEMA = schemas.load(schemas.ENVELOPE_FILE)


def envelope() -> RegisteredSchema:
    parsed = fastavro.parse_schema(copy.deepcopy(ENVELOPE_SCHEMA))
    return RegisteredSchema(7, "shop", ENVELOPE, 1, ENVELOPE_SCHEMA, parsed, None)


def shop_writer() -> dict[str, Any]:
    """A web shop's own record: its names, an extra field at two levels, `productId` for
    itemId (declared as an alias of it), and only the fields it uses."""
    return {
        "type": "record",
        "name": "ClickBatch",
        "namespace": "com.shop.analytics",
        "aliases": ["PutEvents"],
        "fields": [
            {"name": "trackingId", "type": "string"},
            {"name": "userId", "type": ["null", "string"], "default": None},
            {"name": "sessionId", "type": "string"},
            {"name": "pageUrl", "type": "string"},
            {
                "name": "eventList",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Click",
                        "aliases": ["Event"],
                        "fields": [
                            {"name": "eventType", "type": "string"},
                            {"name": "productId", "type": "string", "aliases": ["itemId"]},
                            {"name": "sentAt", "type": "long"},
                            {"name": "position", "type": "int"},
                        ],
                    },
                },
            },
        ],
    }


def written(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), record)
    return buffer.getvalue()


def test_a_writer_with_its_own_names_and_extra_fields_reads_as_the_envelope() -> None:
    writer = shop_writer()
    check_readable(writer, envelope())
    raw = written(
        writer,
        {
            "trackingId": "t",
            "userId": "u1",
            "sessionId": "s1",
            "pageUrl": "/p/42",
            "eventList": [
                {"eventType": "click", "productId": "i42", "sentAt": 1_700_000_000, "position": 3}
            ],
        },
    )
    reader = fastavro.parse_schema(reader_for(writer, ENVELOPE_SCHEMA))
    record = fastavro.schemaless_reader(
        io.BytesIO(raw), fastavro.parse_schema(copy.deepcopy(writer)), reader
    )
    assert record["userId"] == "u1" and "pageUrl" not in record
    event = record["eventList"][0]
    assert event["itemId"] == "i42" and event["sentAt"] == 1_700_000_000
    assert event["eventId"] is None and "position" not in event


def test_the_envelope_itself_is_unchanged_by_its_own_names() -> None:
    assert reader_for(ENVELOPE_SCHEMA, ENVELOPE_SCHEMA) == ENVELOPE_SCHEMA


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda w: w["fields"].pop(0), "trackingId"),  # a required field missing
        (lambda w: w.pop("aliases"), "name mismatch"),  # another record name, no alias
        (
            lambda w: w["fields"][4]["type"]["items"]["fields"][2].update(name="timestamp"),
            "sentAt",
        ),  # a required field renamed without saying what it was
        (lambda w: w["fields"][2].update(type="int"), "sessionId"),  # a type that cannot be read
    ],
)
def test_a_writer_that_cannot_be_read_is_refused_with_the_reason(change: Any, reason: str) -> None:
    writer = shop_writer()
    change(writer)
    with pytest.raises(IncompatibleSchemaError) as refused:
        check_readable(writer, envelope())
    assert "PutEvents" in str(refused.value) or "putevents" in str(refused.value)
    assert reason.lower() in str(refused.value).lower() or "/fields" in str(refused.value)
