"""Event batches through the real ingest path: Kafka dataset and dead letters, Redis state."""

from __future__ import annotations

import json
import os

import pytest
import redis

from connector import wire
from connector.ingest.processor import EventProcessor
from connector.keys import Keys, Subject
from connector.records import ServedList, SourceRecord
from connector.redis_client import connect
from connector.registry.registry import open_registry
from connector.registry.schema import ENVELOPE
from connector.settings import ConnectorSettings
from connector.stores.served import RedisServedLists
from connector.stores.sessions import SessionStore
from connector.wiring import event_processor, history_policy
from tests.integration.helpers import decode_rows, prepare_group, put_events, read_topic


@pytest.fixture
def tracking_id(settings: ConnectorSettings) -> str:
    return prepare_group(settings)


@pytest.fixture
def processor(settings: ConnectorSettings, tracking_id: str) -> EventProcessor:
    return event_processor(settings)


def records(settings: ConnectorSettings, values: list[bytes]) -> list[SourceRecord]:
    return [
        SourceRecord(settings.topics.events, 0, offset, b"k", value)
        for offset, value in enumerate(values)
    ]


def event(item: str, ts: int, kind: str = "click", **extra: object) -> dict[str, object]:
    return {"eventType": kind, "itemId": item, "sentAt": ts, **extra}


def history(redis_db: redis.Redis, settings: ConnectorSettings, subject: Subject) -> list[dict]:
    key = Keys(settings.dataset_group).history(subject)
    return [json.loads(member) for member in redis_db.zrange(key, 0, -1)]


def test_bad_records_go_to_dead_letters_and_good_ones_land(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    good = [
        put_events(tracking_id, "s1", [event(f"i{n}", 1_700_000_000 + n)], user=f"u{n}")
        for n in range(6)
    ]
    bad = {
        b"{not json": "not valid JSON",
        put_events(
            tracking_id, "s1", [event("i9", "yesterday")], user="u9"
        ): "TIMESTAMP must be long, got str 'yesterday'",
        put_events(
            tracking_id, "s1", [event("i9", None)], user="u9"
        ): "TIMESTAMP is required but missing",
        put_events(
            tracking_id, "s1", [{"eventType": "click", "sentAt": 1}], user="u9"
        ): "ITEM_ID is required but missing",
        json.dumps(
            {"trackingId": tracking_id, "eventList": [event("i9", 1)]}
        ).encode(): "sessionId must be a string of 1 to 256 characters",
        put_events("not-a-tracker", "s1", [event("i9", 1)], user="u9"): "unknown trackingId",
        put_events(
            tracking_id, "s1", [event("i9", 1, properties={"x": "y" * 11_000})]
        ): "bytes; at most 10240 are accepted",
        os.urandom(64).replace(b"\x00", b"\x01"): "not valid JSON",
    }
    bad_values = list(bad)
    values = [v for n in range(len(bad)) for v in (good[n : n + 1] + bad_values[n : n + 1])]
    report = processor.process(records(settings, values))
    assert (report.appended, report.dead) == (6, len(bad))
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert sorted(row["USER_ID"] for row in rows) == [f"u{n}" for n in range(6)]
    letters = read_topic(settings, settings.topics.deadletter)
    by_value = {letter.value: letter.headers for letter in letters}
    for value, reason in bad.items():
        assert reason in by_value[value]["streamrec.reason"], by_value[value]
        assert by_value[value]["streamrec.topic"] == settings.topics.events
    offsets = sorted(int(letter.headers["streamrec.offset"]) for letter in letters)
    assert offsets == sorted(values.index(value) for value in bad)
    assert len(history(redis_db, settings, Subject("u", "u3"))) == 1


def test_eleventh_event_type_is_refused(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
) -> None:
    # The shipped Interactions schema has EVENT_TYPE, EVENT_VALUE and 2 metadata fields:
    # 10 - 4 = 6 distinct event types fit.
    types = [f"type{n}" for n in range(8)]
    values = [
        put_events(tracking_id, "s", [event("i", 1_700_000_000 + n, kind)], user="u")
        for n, kind in enumerate(types)
    ]
    report = processor.process(records(settings, values))
    assert (report.appended, report.dead) == (6, 2)
    reasons = [
        m.headers["streamrec.reason"] for m in read_topic(settings, settings.topics.deadletter)
    ]
    assert all("would exceed the budget of 6 distinct event types" in r for r in reasons)
    again = processor.process(
        records(
            settings, [put_events(tracking_id, "s", [event("j", 1_800_000_000, "type0")], user="u")]
        )
    )
    assert again.appended == 1  # a known type is still accepted


def test_identical_events_are_kept_once_also_across_a_restart(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    first = put_events(tracking_id, "s", [event("i1", 1_700_000_000, eventId="a")], user="u")
    resent = put_events(tracking_id, "s", [event("i1", 1_700_000_000, eventId="b")], user="u")
    same_id = put_events(tracking_id, "s", [event("i2", 1_700_000_001, eventId="a")], user="u")
    report = processor.process(records(settings, [first, resent, same_id]))
    assert (report.appended, report.duplicates) == (1, 2)
    restarted = event_processor(settings)
    assert restarted.process(records(settings, [resent])).duplicates == 1
    assert len(read_topic(settings, settings.topics.interactions)) == 1
    assert len(history(redis_db, settings, Subject("u", "u"))) == 1


def test_replaying_a_batch_changes_no_count(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    batch = records(
        settings,
        [
            put_events(
                tracking_id, "s", [event(f"i{n}", 1_700_000_000 + n) for n in range(10)], user="u"
            )
        ],
    )
    processor.process(batch)
    keys = Keys(settings.dataset_group)
    buckets = [int(b) for b in redis_db.zrange(keys.metric_buckets, 0, -1)]
    before = {b: redis_db.hgetall(keys.type_counts(b)) for b in buckets}
    assert processor.process(batch).duplicates == 10
    assert {b: redis_db.hgetall(keys.type_counts(b)) for b in buckets} == before
    assert sum(int(c[b"click"]) for c in before.values()) == 10


def test_anonymous_history_is_stitched_to_the_user_at_login(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    processor.process(
        records(
            settings,
            [
                put_events(
                    tracking_id, "sess", [event("a1", 1_700_000_001), event("a2", 1_700_000_002)]
                ),
            ],
        )
    )
    assert len(history(redis_db, settings, Subject("s", "sess"))) == 2
    report = processor.process(
        records(
            settings,
            [
                put_events(tracking_id, "sess", [event("k1", 1_700_000_003)], user="alice"),
                put_events(tracking_id, "sess", [event("a3", 1_700_000_004)]),
            ],
        )
    )
    assert report.stitched == 1
    items = [entry["item"] for entry in history(redis_db, settings, Subject("u", "alice"))]
    assert items == ["a1", "a2", "k1", "a3"]
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert {row["ITEM_ID"]: row["USER_ID"] for row in rows}["a3"] == "alice"


def test_explicit_and_implicit_impressions(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    served = RedisServedLists(redis_db, Keys(settings.dataset_group))
    served.put("rid-1", ServedList(["x", "y", "z"], "campaign-a"), ttl_seconds=600)
    processor.process(
        records(
            settings,
            [
                put_events(
                    tracking_id,
                    "s",
                    [
                        event("x", 1_700_000_001, recommendationId="rid-1"),
                        event("y", 1_700_000_002, recommendationId="rid-1", impression=["y", "q"]),
                        event("z", 1_700_000_003, impression=["z", "w"]),
                        event("w", 1_700_000_004, recommendationId="rid-unknown"),
                    ],
                    user="u",
                )
            ],
        )
    )
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    impressions = {row["ITEM_ID"]: row["IMPRESSION"] for row in rows}
    assert impressions == {"x": "x|y|z", "y": "y|q", "z": "z|w", "w": None}
    entries = {e["item"]: e["impression"] for e in history(redis_db, settings, Subject("u", "u"))}
    assert entries["x"] == ["x", "y", "z"]


def test_attribution_sources_are_counted(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    keys = Keys(settings.dataset_group)
    RedisServedLists(redis_db, keys).put("rid", ServedList(["x"], "campaign-a"), 600)
    ts = 1_700_000_040  # one 60 s bucket
    processor.process(
        records(
            settings,
            [
                put_events(
                    tracking_id,
                    "s",
                    [
                        event("x", ts, recommendationId="rid"),
                        event(
                            "y",
                            ts + 1,
                            recommendationId="rid",
                            metricAttribution={"eventAttributionSource": "newsletter"},
                        ),
                        event("z", ts + 2),
                    ],
                    user="u",
                )
            ],
        )
    )
    counts = redis_db.hgetall(keys.source_counts(ts - ts % 60))
    assert counts == {b"campaign-a": b"1", b"newsletter": b"1", b"SOURCE_NAME_UNDEFINED": b"1"}


def test_avro_wire_format_records_are_accepted(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
) -> None:
    envelope = open_registry(settings).get(settings.dataset_group, ENVELOPE)
    record = {
        "trackingId": tracking_id,
        "userId": "u",
        "sessionId": "s",
        "eventList": [
            {
                "eventType": "click",
                "itemId": "i",
                "sentAt": 1_700_000_000,
                "properties": {"device": "tv"},
            }
        ],
    }
    interactions = open_registry(settings).get(settings.dataset_group, "interactions")
    values = [
        wire.encode(envelope.id, envelope.parsed, record),
        wire.encode(interactions.id, envelope.parsed, record),
        b"\x00\x00\x0f\x42\x40" + b"\x02" * 10,
    ]
    report = processor.process(records(settings, values))
    assert (report.appended, report.dead) == (1, 2)
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert rows[0]["DEVICE"] == "tv"
    reasons = {
        m.value: m.headers["streamrec.reason"]
        for m in read_topic(settings, settings.topics.deadletter)
    }
    assert f"schema id {interactions.id} is the interactions schema of group" in reasons[values[1]]
    assert reasons[values[2]] == "unknown schema id 1000000"


def test_events_of_the_same_second_stay_in_the_order_they_arrived(
    processor: EventProcessor,
    settings: ConnectorSettings,
    tracking_id: str,
    redis_db: redis.Redis,
) -> None:
    """A sorted set orders equal scores by member, which put same-second events in the
    order of their JSON ("a" before "z"); the model reads them in the order they happened."""
    values = [
        put_events(tracking_id, "s-tie", [event("z", 1000), event("a", 1000)], "tie"),
        put_events(tracking_id, "s-tie", [event("m", 1000)], "tie"),
        put_events(tracking_id, "s-tie", [event("b", 999)], "tie"),
    ]
    assert processor.process(records(settings, values)).appended == 4
    items = [entry["item"] for entry in history(redis_db, settings, Subject("u", "tie"))]
    assert items == ["b", "z", "a", "m"]


def test_one_script_records_each_subjects_events_together_in_batch_order(
    settings: ConnectorSettings,
    tracking_id: str,
    processor: EventProcessor,
    redis_db: redis.Redis,
) -> None:
    """The apply script, given repeats the pre-check would have dropped: within a batch, a
    resend and a reused eventId are duplicates of the first copy whichever subjects' events
    lie between, and a subject with more markers than one call takes is recorded whole."""
    ts = 1_700_000_000
    heavy = [event(f"i{n}", ts + n, eventId=f"h{n}") for n in range(1_500)]  # 3,000 markers
    light = [event(f"j{n}", ts + n, eventId=f"l{n}") for n in range(20)]
    values = [put_events(tracking_id, "s", [e], user="heavy") for e in heavy]
    for n, e in enumerate(light):
        values.insert(3 * n + 1, put_events(tracking_id, "t", [e], user="light"))
    values.append(put_events(tracking_id, "s", [heavy[7]], user="heavy"))  # resend
    values.append(put_events(tracking_id, "t", [{**light[0], "itemId": "x"}], user="light"))
    accepted = processor.prepare(records(settings, values)).plan.accepted
    store = SessionStore(connect(settings), Keys(settings.dataset_group), history_policy(settings))
    report = store.apply(accepted, [])
    assert (report.admitted, report.duplicates) == (1_520, 2)
    assert [e.row["ITEM_ID"] for e in report.applied] == [e.row["ITEM_ID"] for e in accepted[:-2]]
    keys = Keys(settings.dataset_group)
    assert redis_db.zcard(keys.seen(Subject("u", "heavy"))) == 3_000
    assert redis_db.zcard(keys.interacted(Subject("u", "heavy"))) == 1_500
    newest = [
        json.loads(m)["item"] for m in redis_db.zrange(keys.history(Subject("u", "heavy")), -3, -1)
    ]
    assert newest == ["i1497", "i1498", "i1499"]
    assert len(history(redis_db, settings, Subject("u", "light"))) == 20
    again = store.apply(accepted, [])
    assert (again.admitted, again.duplicates) == (0, 1_522)
