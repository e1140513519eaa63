"""Source mappings: parsed once, applied to records, checked against an Avro schema."""

from __future__ import annotations

from typing import Any

import pytest

from connector.exceptions import MappingError
from connector.sources.check import check_against
from connector.sources.mapping import parse_mapping

CLICKSTREAM = {
    "target": "events",
    "skip": [{"path": "type", "in": ["heartbeat"]}, {"path": "user.id", "missing": True}],
    "fields": {
        "userId": {"path": "user.id", "convert": "string"},
        "eventType": {"path": "type", "values": {"page_view": "view", "add_to_cart": "cart"}},
        "itemId": {"path": "products[0].sku"},
        "sentAt": {"path": "ts", "convert": "epoch_millis"},
        "eventValue": {"path": "products[0].price"},
        "properties.device": {"path": "context.device", "convert": "lower"},
    },
}


def record(**overrides: Any) -> dict[str, Any]:
    base = {
        "type": "page_view",
        "ts": 1_700_000_123_456,
        "user": {"id": 42},
        "products": [{"sku": "i7", "price": 9.5}, {"sku": "i8", "price": 1.0}],
        "context": {"device": "TV"},
    }
    return {**base, **overrides}


def test_a_clickstream_record_becomes_an_event() -> None:
    mapping = parse_mapping(CLICKSTREAM)
    assert mapping.apply(record()) == {
        "userId": "42",
        "eventType": "view",
        "itemId": "i7",
        "sentAt": 1_700_000_123,
        "eventValue": 9.5,
        "properties": {"device": "tv"},
    }
    assert mapping.apply(record(type="scroll"))["eventType"] == "scroll"  # unlisted: unchanged


def test_skip_conditions_drop_records_without_a_dead_letter() -> None:
    mapping = parse_mapping(CLICKSTREAM)
    assert mapping.apply(record(type="heartbeat")) is None
    assert mapping.apply(record(user={})) is None


def test_iso_timestamps_constants_and_defaults() -> None:
    mapping = parse_mapping(
        {
            "fields": {
                "sessionId": {"path": "session"},
                "eventType": {"path": "kind", "values": {"buy": "purchase"}, "default": "other"},
                "sentAt": {"path": "at", "convert": "iso8601"},
                "properties.channel": {"const": "web"},
            }
        }
    )
    entry = mapping.apply({"session": "s1", "kind": "look", "at": "2023-11-14T22:13:20Z"})
    assert entry == {
        "sessionId": "s1",
        "eventType": "other",
        "sentAt": 1_700_000_000,
        "properties": {"channel": "web"},
    }


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (record(ts="soon"), "sentAt: epoch_millis of path ts"),
        (record(ts=None), "sentAt: path ts finds no value"),
        (record(type=None), "eventType: path type finds no value"),
    ],
)
def test_a_failed_step_names_the_field_and_the_step(bad: dict[str, Any], reason: str) -> None:
    mapping = parse_mapping({**CLICKSTREAM, "skip": [{"path": "type", "in": ["heartbeat"]}]})
    with pytest.raises(MappingError, match=reason):
        mapping.apply(bad)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"target": "orders", "fields": {}}, "target must be one of"),
        ({"fields": {"itemId": {"path": "a"}}}, "required fields are not mapped"),
        ({"fields": {**CLICKSTREAM["fields"], "colour": {"path": "c"}}}, "not a field of events"),
        ({"fields": {**CLICKSTREAM["fields"], "itemId": {"path": "a..b"}}}, "path 'a..b'"),
        ({"fields": {**CLICKSTREAM["fields"], "itemId": {"path": "a", "convert": "x"}}}, "convert"),
        ({"fields": {**CLICKSTREAM["fields"], "itemId": {"path": "a", "const": 1}}}, "exactly one"),
        ({"fields": CLICKSTREAM["fields"], "skip": [{"path": "a"}]}, "one of equals"),
    ],
)
def test_a_malformed_mapping_is_refused_with_the_reason(document: Any, reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        parse_mapping(document)


CLICK_SCHEMA = {
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "type", "type": {"type": "enum", "name": "Kind", "symbols": ["page_view", "x"]}},
        {"name": "ts", "type": "long"},
        {
            "name": "user",
            "type": {"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]},
        },
        {
            "name": "products",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Product",
                    "fields": [
                        {"name": "sku", "type": "string"},
                        {"name": "price", "type": ["null", "double"]},
                    ],
                },
            },
        },
        {"name": "context", "type": ["null", {"type": "map", "values": "string"}]},
    ],
}


def test_a_mapping_that_fits_the_avro_schema_passes() -> None:
    check_against(parse_mapping(CLICKSTREAM), CLICK_SCHEMA)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"itemId": {"path": "products[0].code"}}, "products\\[0\\].code is not in"),
        ({"itemId": {"path": "basket.sku"}}, "basket is not in"),
        ({"userId": {"path": "user.id"}}, "userId: path user.id is long"),
        ({"sentAt": {"path": "user.id", "convert": "iso8601"}}, "convert iso8601 cannot take"),
    ],
)
def test_a_mapping_that_does_not_fit_the_schema_is_refused(
    change: dict[str, Any], reason: str
) -> None:
    mapping = parse_mapping({**CLICKSTREAM, "fields": {**CLICKSTREAM["fields"], **change}})
    with pytest.raises(MappingError, match=reason):
        check_against(mapping, CLICK_SCHEMA)


DEBEZIUM_ITEMS = {
    "type": "record",
    "name": "Envelope",
    "namespace": "shop.public.items",
    "fields": [
        {
            "name": "before",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Value",
                    "fields": [
                        {"name": "id", "type": "string"},
                        {"name": "genre", "type": ["null", "string"]},
                    ],
                },
            ],
        },
        {"name": "after", "type": ["null", "Value"]},  # a reference, as Debezium writes it
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"]},
    ],
}


def test_a_debezium_mapping_is_checked_against_the_row_after_the_change() -> None:
    mapping = parse_mapping(
        {
            "target": "items",
            "fields": {"itemId": {"path": "id"}, "properties.genres": {"path": "genre"}},
        }
    )
    check_against(mapping, DEBEZIUM_ITEMS, "after")
    with pytest.raises(MappingError, match="path id: id is not in the topic's schema"):
        check_against(mapping, DEBEZIUM_ITEMS)  # from the envelope, the row's fields are not there
    missing = parse_mapping({"target": "items", "fields": {"itemId": {"path": "sku"}}})
    with pytest.raises(MappingError, match="sku is not in the topic's schema"):
        check_against(missing, DEBEZIUM_ITEMS, "after")
