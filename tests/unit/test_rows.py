"""PutEvents records become Interactions rows, or a clear reason why not."""

from __future__ import annotations

import json
import re

import pytest

import schemas
from connector.exceptions import InvalidEventError
from connector.ingest.limits import check_envelope
from connector.ingest.rows import decode_json, interaction_row, metadata_row, property_field
from connector.registry.rules import check_schema
from tests.conftest import example

INTERACTIONS = check_schema("interactions", schemas.load("interactions.avsc"))
FLOAT = "a finite float (an Avro float: 32 bits, at most 3.4028235e+38 in magnitude)"


def interaction_rows(record: dict, schema=INTERACTIONS) -> list[dict]:
    """Rows of a one-record example, as the connector maps them (user, else session)."""
    user = record.get("userId") or record.get("sessionId")
    return [interaction_row(e, user, e.get("impression"), schema) for e in record["eventList"]]


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("numRatings", "NUM_RATINGS"),
        ("device", "DEVICE"),
        ("eventAttributionSource", "EVENT_ATTRIBUTION_SOURCE"),
        ("size2Xl", "SIZE2_XL"),
    ],
)
def test_camel_case_property_maps_to_upper_snake_field(key: str, field: str) -> None:
    assert property_field(key) == field


def test_full_event_maps_every_personalize_field() -> None:
    [row] = interaction_rows(example("events/watch.json"), INTERACTIONS)
    assert row == {
        "USER_ID": "user123",
        "ITEM_ID": "item-42",
        "TIMESTAMP": 1667260945,
        "EVENT_TYPE": "watch",
        "EVENT_VALUE": 4.5,
        "IMPRESSION": "item-42|item-7|item-9",
        "RECOMMENDATION_ID": "RID-1",
        "EVENT_ATTRIBUTION_SOURCE": "homepage",
        "DEVICE": "phone",
        "LOCATION": "Berlin",
    }


def test_anonymous_event_is_kept_under_its_session_id() -> None:
    [row] = interaction_rows(example("events/anonymous.json"), INTERACTIONS)
    assert row["USER_ID"] == "session-77"


def test_properties_may_arrive_as_a_json_string_as_in_the_personalize_api() -> None:
    record = example("events/watch.json")
    record["eventList"][0]["properties"] = json.dumps({"device": "tv"})
    assert interaction_rows(record, INTERACTIONS)[0]["DEVICE"] == "tv"


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("missing-item.json", "ITEM_ID is required but missing"),
        (
            "unknown-property.json",
            "property numRatings maps to NUM_RATINGS, which is not a "
            "metadata field of the Interactions schema",
        ),
    ],
)
def test_invalid_example_event_is_rejected_with_its_reason(file: str, reason: str) -> None:
    with pytest.raises(InvalidEventError) as rejected:
        interaction_rows(example(f"events/{file}"), INTERACTIONS)
    assert str(rejected.value) == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sentAt": "yesterday"}, "TIMESTAMP must be long, got str 'yesterday'"),
        ({"eventType": ""}, "eventType is required on every event"),
        ({"eventValue": "high"}, f"EVENT_VALUE must be {FLOAT}, got str 'high'"),
        ({"eventValue": float("inf")}, f"EVENT_VALUE must be {FLOAT}, got float inf"),
        ({"eventValue": True}, f"EVENT_VALUE must be {FLOAT}, got bool True"),
        ({"eventValue": 1e39}, f"EVENT_VALUE must be {FLOAT}, got float 1e+39"),
        ({"eventValue": -(10**39)}, f"EVENT_VALUE must be {FLOAT}, got int {-(10**39)}"),
        ({"sentAt": 2**63}, "TIMESTAMP must be long, got int 9223372036854775808"),
    ],
)
def test_wrong_value_names_the_field(change: dict[str, object], reason: str) -> None:
    record = example("events/anonymous.json")
    record["eventList"][0].update(change)
    with pytest.raises(InvalidEventError) as rejected:
        interaction_rows(record, INTERACTIONS)
    assert str(rejected.value) == reason


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_undecodable_record_is_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEventError):
        decode_json(raw)


@pytest.mark.parametrize(
    ("raw", "position"),
    [(b"\xff\xfe{}", "byte 0 is 0xff"), (b'{"a": "\xed\xa0\x80"}', "byte 7 is 0xed")],
)
def test_bytes_that_are_not_utf8_are_named_so(raw: bytes, position: str) -> None:
    """orjson says "surrogates not allowed" for any bad byte, surrogate or not."""
    with pytest.raises(InvalidEventError) as rejected:
        decode_json(raw)
    assert str(rejected.value) == f"not valid JSON: the bytes are not valid UTF-8 ({position})"


def test_a_value_is_finite_in_the_type_it_is_stored_as() -> None:
    """A float field holds 32 bits: 1e39 is finite in JSON but infinite once stored; a
    double field holds it. The largest 32-bit float itself passes."""
    schema = check_schema(
        "items",
        {
            "type": "record",
            "name": "Items",
            "fields": [
                {"name": "ITEM_ID", "type": "string"},
                {"name": "PRICE", "type": ["null", "float"]},
                {"name": "WEIGHT", "type": ["null", "double"]},
            ],
        },
    )
    assert metadata_row("i", {"price": 3.4028235e38, "weight": 1e39}, schema)["WEIGHT"] == 1e39
    for price in (1e39, -3.5e38, 2**128):
        with pytest.raises(InvalidEventError, match=f"PRICE must be {re.escape(FLOAT)}"):
            metadata_row("i", {"price": price}, schema)
    with pytest.raises(InvalidEventError, match="WEIGHT must be a finite double"):
        metadata_row("i", {"weight": 10**400}, schema)


def test_empty_event_list_is_rejected() -> None:
    with pytest.raises(InvalidEventError, match="eventList must be a list of 1 to 10 events"):
        check_envelope({"sessionId": "s", "eventList": []})
