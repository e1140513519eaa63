"""CSV rows in Personalize's import format become PutEvents / PutItems records."""

from __future__ import annotations

import pytest

import schemas
from connector.bulk_import import (
    ImportSummary,
    event_records,
    metadata_records,
    property_key,
    typed,
)
from connector.ingest.rows import property_field
from connector.registry.rules import check_schema

INTERACTIONS = check_schema("interactions", schemas.load("interactions.avsc"))
ITEMS = check_schema("items", schemas.load("items.avsc"))


@pytest.mark.parametrize("name", ["NUM_RATINGS", "DEVICE", "EVENT_ATTRIBUTION_SOURCE", "A2_B"])
def test_property_key_is_the_inverse_of_property_field(name: str) -> None:
    assert property_field(property_key(name)) == name


def test_cells_are_typed_by_the_schema() -> None:
    values = typed(
        INTERACTIONS,
        {"USER_ID": "7", "TIMESTAMP": "17", "EVENT_VALUE": "2.5", "DEVICE": "", "EXTRA": "x"},
    )
    assert values == {
        "USER_ID": "7",
        "TIMESTAMP": 17,
        "EVENT_VALUE": 2.5,
        "DEVICE": None,
        "EXTRA": "x",
    }


def test_interaction_rows_become_put_events_records() -> None:
    summary = ImportSummary()
    rows = [
        {
            "USER_ID": "u1",
            "ITEM_ID": "i1",
            "TIMESTAMP": "1700000000",
            "EVENT_TYPE": "rating",
            "EVENT_VALUE": "4",
            "IMPRESSION": "i1|i2",
            "DEVICE": "tv",
        },
        {"USER_ID": "u2", "ITEM_ID": "", "TIMESTAMP": "1700000001", "EVENT_TYPE": "click"},
        {"USER_ID": "u3", "ITEM_ID": "i3", "TIMESTAMP": "soon", "EVENT_TYPE": "click"},
    ]
    records = list(event_records(rows, INTERACTIONS, "tid", summary))
    assert records[0] == (
        "u1",
        {
            "trackingId": "tid",
            "userId": "u1",
            "sessionId": "u1",
            "eventList": [
                {
                    "itemId": "i1",
                    "sentAt": 1_700_000_000,
                    "eventType": "rating",
                    "eventValue": 4.0,
                    "impression": ["i1", "i2"],
                    "properties": {"device": "tv"},
                }
            ],
        },
    )
    assert len(records) == 3  # every row is published; the connector dead-letters the bad
    assert (summary.rows, summary.accepted) == (3, 1)
    assert summary.reasons == {
        "ITEM_ID is required but missing": 1,
        "TIMESTAMP must be long, got str 'soon'": 1,
    }


def test_item_rows_are_grouped_ten_to_a_record() -> None:
    summary = ImportSummary()
    rows = [
        {"ITEM_ID": f"m{n}", "TITLE": f"T{n}", "CREATION_TIMESTAMP": "1600000000"}
        for n in range(23)
    ]
    records = list(metadata_records(rows, ITEMS, summary))
    assert [len(record["items"]) for _, record in records] == [10, 10, 3]
    assert records[0][1]["items"][0] == {
        "itemId": "m0",
        "properties": {"title": "T0", "creationTimestamp": 1_600_000_000},
    }
    assert summary.accepted == 23
