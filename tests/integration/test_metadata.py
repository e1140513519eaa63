"""PutItems / PutUsers records: validated upserts into Redis hashes and dataset topics."""

from __future__ import annotations

import json

import redis

from connector.keys import Keys
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.wiring import processors
from tests.integration.helpers import decode_rows, prepare_group, read_topic


def as_records(topic: str, values: list[bytes]) -> list[SourceRecord]:
    return [SourceRecord(topic, 0, n, b"k", value) for n, value in enumerate(values)]


def test_items_are_upserted_and_bad_ones_dead_lettered(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    prepare_group(settings)
    items = processors(settings).items
    first = {
        "items": [
            {
                "itemId": "m1",
                "properties": {
                    "creationTimestamp": 1_600_000_000,
                    "title": "Heat",
                    "genres": "Action|Crime",
                },
            },
            {"itemId": "m2", "properties": json.dumps({"title": "Up"})},
            {"itemId": "m3", "properties": {"rating": 5}},
            {"properties": {"title": "no id"}},
        ]
    }
    report = items.process(
        as_records(
            settings.topics.items,
            [
                json.dumps(first).encode(),
                b"[1,2]",
                json.dumps(
                    {"items": [{"itemId": "m1", "properties": {"title": "Heat (1995)"}}]}
                ).encode(),
            ],
        )
    )
    assert (report.upserted, report.dead) == (3, 3)
    keys = Keys(settings.dataset_group)
    assert redis_db.hgetall(keys.item("m1")) == {b"ITEM_ID": b"m1", b"TITLE": b"Heat (1995)"}
    assert redis_db.hgetall(keys.item("m2")) == {b"ITEM_ID": b"m2", b"TITLE": b"Up"}
    rows = decode_rows(settings, read_topic(settings, settings.topics.items_dataset))
    assert [row["ITEM_ID"] for row in rows] == ["m1", "m2", "m1"]
    assert rows[0]["CREATION_TIMESTAMP"] == 1_600_000_000
    reasons = sorted(
        m.headers["streamrec.reason"] for m in read_topic(settings, settings.topics.deadletter)
    )
    assert reasons == [
        "a record must be a JSON object",
        "itemId must be a string of 1 to 256 characters",
        "property rating maps to RATING, which is not a metadata field of the Items schema",
    ]


def test_users_are_upserted(settings: ConnectorSettings, redis_db: redis.Redis) -> None:
    prepare_group(settings)
    report = processors(settings).users.process(
        as_records(
            settings.topics.users,
            [
                json.dumps(
                    {
                        "users": [
                            {"userId": "u1", "properties": {"age": 31, "gender": "F"}},
                            {"userId": "u2", "properties": {"age": "old"}},
                        ]
                    }
                ).encode()
            ],
        )
    )
    assert (report.upserted, report.dead) == (1, 1)
    user = redis_db.hgetall(Keys(settings.dataset_group).user("u1"))
    assert user == {b"USER_ID": b"u1", b"AGE": b"31", b"GENDER": b"F"}


def test_records_without_a_registered_schema_are_kept_aside(
    settings: ConnectorSettings,
) -> None:
    import schemas
    from connector.registry.registry import open_registry
    from connector.wiring import ensure_group_topics

    open_registry(settings).register(
        settings.dataset_group, "interactions", schemas.load("interactions.avsc")
    )
    ensure_group_topics(settings)
    value = json.dumps({"users": [{"userId": "u1", "properties": {"age": 3}}]}).encode()
    report = processors(settings).users.process(as_records(settings.topics.users, [value]))
    assert (report.upserted, report.dead) == (0, 1)
    [letter] = read_topic(settings, settings.topics.deadletter)
    assert letter.value == value
    assert "no users schema is registered" in letter.headers["streamrec.reason"]
