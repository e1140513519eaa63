"""Numbers that are finite in JSON but not in the type they are stored as, through the real
event and metadata processors, against the real broker and Redis.

Why: an Avro float holds 32 bits. `"eventValue": 1e39` is a finite JSON number and a finite
Python float, but the Interactions dataset would store it as infinity, Redis as 1e+39, and a
rebuild from the dataset would then disagree with the live state. Such a value is refused
with a reason that names the field and the type, whichever dataset the field belongs to.
"""

from __future__ import annotations

import json
import math
from typing import Any

import redis

import schemas
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.registry.registry import open_registry
from connector.settings import ConnectorSettings
from connector.wiring import processors
from tests.integration.helpers import decode_rows, prepare_group, put_events, read_topic

FLOAT32_MAX = 3.4028234663852886e38  # the largest finite 32-bit float
FLOAT = "must be a finite float (an Avro float: 32 bits, at most 3.4028235e+38 in magnitude)"


def _with_fields(file: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The shipped schema with `fields` added (nullable, so the new version is compatible)."""
    schema = schemas.load(file)
    return {**schema, "fields": [*schema["fields"], *fields]}


def _register_float_fields(settings: ConnectorSettings) -> str:
    tracking_id = prepare_group(settings)
    registry = open_registry(settings)
    group = settings.dataset_group
    registry.register(
        group,
        "interactions",
        _with_fields("interactions.avsc", [{"name": "DWELL", "type": ["null", "float"]}]),
    )
    registry.register(
        group,
        "items",
        _with_fields(
            "items.avsc",
            [
                {"name": "PRICE", "type": ["null", "float"]},
                {"name": "WEIGHT", "type": ["null", "double"]},
            ],
        ),
    )
    registry.register(
        group, "users", _with_fields("users.avsc", [{"name": "SCORE", "type": ["null", "float"]}])
    )
    return tracking_id


def _records(topic: str, values: list[bytes]) -> list[SourceRecord]:
    return [SourceRecord(topic, 0, offset, b"k", value) for offset, value in enumerate(values)]


def _reasons(settings: ConnectorSettings) -> dict[str, str]:
    """Dead-letter reasons by the id of the entity or event they are about."""
    reasons = {}
    for letter in read_topic(settings, settings.topics.deadletter):
        assert letter.value is not None
        reasons[_about(json.loads(letter.value), letter.headers)] = letter.headers[
            "streamrec.reason"
        ]
    return reasons


def _about(record: dict[str, Any], headers: dict[str, str]) -> str:
    index = int(headers.get("streamrec.event_index", "0"))
    for name, id_field in (("eventList", "itemId"), ("items", "itemId"), ("users", "userId")):
        if name in record:
            return str(record[name][index][id_field])
    raise AssertionError(f"unexpected dead letter {record}")


def test_numbers_not_finite_in_their_stored_type_are_dead_lettered(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    tracking_id = _register_float_fields(settings)
    handlers = processors(settings)
    t0 = 1_700_000_000
    events = [
        {"eventType": "click", "itemId": "big", "sentAt": t0, "eventValue": 1e39},
        {"eventType": "click", "itemId": "low", "sentAt": t0 + 1, "eventValue": -(10**39)},
        {"eventType": "click", "itemId": "dwell", "sentAt": t0 + 2, "properties": {"dwell": 1e39}},
        {"eventType": "click", "itemId": "max", "sentAt": t0 + 3, "eventValue": FLOAT32_MAX},
        {"eventType": "click", "itemId": "fine", "sentAt": t0 + 4, "eventValue": 2.5},
    ]
    value = put_events(tracking_id, "s1", events, user="ann")
    report = handlers.events.process(_records(settings.topics.events, [value]))
    assert (report.appended, report.dead) == (2, 3)

    items = {
        "items": [
            {"itemId": "m-price", "properties": {"price": 1e39}},
            {"itemId": "m-weight", "properties": {"weight": 1e39, "price": 9.5}},
        ]
    }
    users = {
        "users": [
            {"userId": "u-score", "properties": {"score": -1e39}},
            {"userId": "u-fine", "properties": {"score": 0.5}},
        ]
    }
    item_report = handlers.items.process(
        _records(settings.topics.items, [json.dumps(items).encode()])
    )
    user_report = handlers.users.process(
        _records(settings.topics.users, [json.dumps(users).encode()])
    )
    assert (item_report.upserted, item_report.dead) == (1, 1)
    assert (user_report.upserted, user_report.dead) == (1, 1)

    assert _reasons(settings) == {
        "big": f"EVENT_VALUE {FLOAT}, got float 1e+39",
        "low": f"EVENT_VALUE {FLOAT}, got float -1e+39",  # JSON: beyond 64 bits, a float
        "dwell": f"DWELL {FLOAT}, got float 1e+39",
        "m-price": f"PRICE {FLOAT}, got float 1e+39",
        "u-score": f"SCORE {FLOAT}, got float -1e+39",
    }
    stored = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert [(row["ITEM_ID"], row["EVENT_VALUE"]) for row in stored] == [
        ("max", FLOAT32_MAX),
        ("fine", 2.5),
    ]
    item_rows = decode_rows(settings, read_topic(settings, settings.topics.items_dataset))
    assert [(row["ITEM_ID"], row["WEIGHT"]) for row in item_rows] == [("m-weight", 1e39)]
    user_rows = decode_rows(settings, read_topic(settings, settings.topics.users_dataset))
    assert [row["USER_ID"] for row in user_rows] == ["u-fine"]
    every_number = [
        value
        for row in stored + item_rows + user_rows
        for value in row.values()
        if isinstance(value, float)
    ]
    assert every_number and all(math.isfinite(value) for value in every_number)

    keys = Keys(settings.dataset_group)
    history = [json.loads(m) for m in redis_db.zrange(keys.history(Subject("u", "ann")), 0, -1)]
    assert [entry["item"] for entry in history] == ["max", "fine"]
    assert not redis_db.exists(keys.item("m-price"), keys.user("u-score"))
