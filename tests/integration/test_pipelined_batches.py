"""Batch n+1 prepared while batch n is still in flight (the connector's pipeline), through the
real ingest path: n+1 sees n's dedup markers and stitches before they reach Redis, and the
state both leave equals what the same batches leave one after the other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from connector.ingest.processor import BatchReport, EventProcessor, PreparedBatch
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.wiring import event_processor
from tests.integration.helpers import decode_rows, prepare_group, put_events, read_topic

T = 1_700_000_000


def event(item: str, ts: int, **extra: object) -> dict[str, object]:
    return {"eventType": "click", "itemId": item, "sentAt": ts, **extra}


def batches(settings: ConnectorSettings, tracking_id: str) -> list[list[SourceRecord]]:
    """Batch 0, applied before; batch n with a login; batch n+1 with resends and the
    stitched session's anonymous events."""
    values = [
        [put_events(tracking_id, "s", [event("a0", T, eventId="anon-0")])],
        [
            put_events(tracking_id, "s-u1", [event("x", T + 1, eventId="x")], user="u1"),
            put_events(tracking_id, "s", [event("k1", T + 2)], user="alice"),
        ],
        [
            put_events(tracking_id, "s-u1", [event("x", T + 1, eventId="x")], user="u1"),
            put_events(tracking_id, "s-u1", [event("y", T + 5, eventId="x")], user="u1"),
            put_events(tracking_id, "s", [event("a1", T + 3)]),
            put_events(tracking_id, "s", [event("a2", T + 4, eventId="anon-0")]),
            put_events(tracking_id, "s-u2", [event("z", T + 6)], user="u2"),
        ],
    ]
    offsets = iter(range(100))
    return [
        [SourceRecord(settings.topics.events, 0, next(offsets), b"k", value) for value in batch]
        for batch in values
    ]


def finish(processor: EventProcessor, prepared: PreparedBatch) -> BatchReport:
    """The connector's steps after preparing: append, apply, then the lists."""
    report = processor.apply(prepared, processor.append(prepared))
    return replace(report, lists_refreshed=processor.refresh_lists([prepared]))


def pipelined(processor: EventProcessor, work: list[list[SourceRecord]]) -> list[BatchReport]:
    """The connector's order: n+1 is prepared before n finishes."""
    first = processor.process(work[0])
    batch_n = processor.prepare(work[1])
    batch_next = processor.prepare(work[2], in_flight=batch_n)
    assert [e.row["ITEM_ID"] for e in batch_next.fresh] == ["a1", "z"]  # before n is applied
    return [first, finish(processor, batch_n), finish(processor, batch_next)]


def redis_state(client: redis.Redis, group: str) -> dict[str, object]:
    """Every key of the group, by name without the group, with its value (but the active
    set, scored by wall-clock time)."""
    state: dict[str, object] = {}
    for key in client.scan_iter(match=f"streamrec:{group}:*"):
        if key.endswith(b":active"):
            continue
        kind = client.type(key)
        read = {
            b"zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            b"string": client.get,
            b"hash": client.hgetall,
            b"set": client.smembers,
        }[kind]
        state[key.decode().replace(group, "G")] = read(key)
    return state


@pytest.fixture
def sequential(settings: ConnectorSettings, redis_db: redis.Redis) -> Iterator[ConnectorSettings]:
    """A second group of this test, for the same batches one after the other."""
    group = f"{settings.dataset_group}q"
    other = settings.model_copy(
        update={
            "dataset_group": group,
            "schemas_topic": f"{settings.schemas_topic}q",
            "trackers_topic": f"{settings.trackers_topic}q",
        }
    )
    yield other
    keys = list(redis_db.scan_iter(match=f"streamrec:{group}:*"))
    if keys:
        redis_db.delete(*keys)


def test_batch_n_plus_1_sees_the_markers_and_stitches_of_batch_n_in_flight(
    settings: ConnectorSettings, sequential: ConnectorSettings, redis_db: redis.Redis
) -> None:
    work = batches(settings, prepare_group(settings))
    reports = pipelined(event_processor(settings), work)
    # n+1: the resend of x and the reuse of its eventId are dropped; a1 goes to alice, whom
    # n stitched the session to; a2 reuses the eventId of the session's event from before
    # the login, which n's stitch merges into alice's markers, so it is dropped too. (Each
    # user's first event with a session id links that session: s-u1 in n, s-u2 in n+1.)
    assert [(r.appended, r.duplicates, r.stitched) for r in reports] == [
        (1, 0, 0),
        (2, 0, 2),
        (2, 3, 1),
    ]
    keys = Keys(settings.dataset_group)
    alice = redis_db.zrange(keys.history(Subject("u", "alice")), 0, -1)
    assert [json.loads(member)["item"] for member in alice] == ["a0", "k1", "a1"]
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert sorted((row["ITEM_ID"], row["USER_ID"]) for row in rows) == [
        ("a0", "s"),
        ("a1", "alice"),
        ("k1", "alice"),
        ("x", "u1"),
        ("z", "u2"),
    ]

    again = batches(sequential, prepare_group(sequential))
    one_by_one = event_processor(sequential)
    expected = [one_by_one.process(batch) for batch in again]
    assert [(r.appended, r.duplicates, r.stitched) for r in expected] == [
        (r.appended, r.duplicates, r.stitched) for r in reports
    ]
    assert redis_state(redis_db, settings.dataset_group) == redis_state(
        redis_db, sequential.dataset_group
    )
