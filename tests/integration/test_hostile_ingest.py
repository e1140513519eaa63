"""Generated batches mixing good and hostile records through the real EventProcessor, against
the real broker and Redis, reconciled exactly.

Why: the unit tests prove the pure planner never raises; this proves the whole path after it
(dedup, the dataset and dead-letter producers, the Redis script) also takes whatever the
planner lets through: every good event lands in the Interactions dataset and in its
subject's history, every bad record or event is in the dead-letter topic with its offset and
a reason, and no key is written outside `streamrec:<group>:` or outside the key layout, even
for ids made of `:`, `{`, `}`, `*`, `?`, `[` and control characters.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from itertools import count
from typing import Any, cast
from urllib.parse import quote

import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connector.ingest.processor import EventProcessor
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.registry.registry import open_registry
from connector.registry.schema import ENVELOPE
from connector.settings import ConnectorSettings
from connector.wiring import event_processor
from tests.integration.helpers import decode_rows, prepare_group, read_topic
from tests.unit.test_hostile_input import Bad, bad_events, bad_records, encode, good_records

# A handful of batches of up to 12 records: enough to mix every hostile kind with good
# records, bounded so the test takes seconds. No shrinking: a failure is reported as found.
BATCHES = settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
LAYOUT = re.compile(
    r"\{[us]:[A-Za-z0-9%._~-]+\}:(history|seen|interacted|served|recs|user|meta)"
    r"|active|event_types|attribution_sources"
    r"|metrics:\{m:[A-Za-z0-9%._~-]+\}:((types|sources):\d+|buckets)"
)
GROUP_KEY = re.compile(r"streamrec:([a-z0-9][a-z0-9_-]{0,62}):")
OVERSIZED = 1_040_000  # near the broker's default limit: must still fit in the dead-letter topic


@dataclass
class Ledger:
    """What was sent and what must come out: (offset, event index) -> event or reason."""

    values: dict[int, bytes | None] = field(default_factory=dict)
    good: dict[tuple[int, int], tuple[Subject, dict[str, Any]]] = field(default_factory=dict)
    bad: set[tuple[int, int | None]] = field(default_factory=set)
    linked: dict[str, str] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    offsets: count[int] = field(default_factory=count)
    unique: count[int] = field(default_factory=count)

    def add_good(self, offset: int, record: dict[str, Any]) -> None:
        user, session = record.get("userId"), record["sessionId"]
        if user:
            self.linked.setdefault(session, user)
        known = user or self.linked.get(session)
        subject = Subject("u", known) if known else Subject("s", session)
        self.ids.update(i for i in (user, session) if i)
        for index, event in enumerate(record["eventList"]):
            self.good[(offset, index)] = (subject, event)
            self.ids.add(event["itemId"])

    def unique_events(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with events no other could be a duplicate of (value and id unique)."""
        events = [
            {**event, "eventValue": float(next(self.unique)), "eventId": f"e{next(self.unique)}"}
            for event in record["eventList"]
        ]
        return {**record, "eventList": events}


def all_keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(count=1000))


def test_generated_batches_reconcile_exactly(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    tracking_id = prepare_group(settings)
    processor = event_processor(settings)
    envelope_id = open_registry(settings).get(settings.dataset_group, ENVELOPE).id
    before = all_keys(redis_db)
    ledger = Ledger()

    @BATCHES
    @given(
        st.lists(
            st.tuples(st.integers(0, 2), good_records(), bad_events | bad_records),
            min_size=1,
            max_size=12,
        )
    )
    def one_batch(cases: list[tuple[int, tuple[dict[str, Any], bool], Bad]]) -> None:
        records = [
            _case(ledger, choice, pair, bad, tracking_id, envelope_id)
            for choice, pair, bad in cases
        ]
        _process(processor, settings, ledger, records)

    one_batch()
    oversized = os.urandom(OVERSIZED).replace(b"\x00", b"\x01")
    _process(processor, settings, ledger, [_bad_record(ledger, oversized)])
    _process(processor, settings, ledger, _wrong_schema_ids(ledger, settings, tracking_id))

    assert ledger.good and ledger.bad
    _check_dataset(settings, ledger)
    _check_dead_letters(settings, ledger)
    _check_histories(settings, redis_db, ledger)
    _check_keys(settings, ledger, all_keys(redis_db) - before)


def _case(
    ledger: Ledger,
    choice: int,
    pair: tuple[dict[str, Any], bool],
    bad: Bad,
    tracking_id: str,
    envelope_id: int,
) -> SourceRecord:
    record, avro = pair
    record = ledger.unique_events({**record, "trackingId": tracking_id})
    if choice == 0:  # a good record, JSON or Avro
        offset = next(ledger.offsets)
        ledger.values[offset] = value = encode(record, avro, envelope_id)
        ledger.add_good(offset, record)
        return SourceRecord("events", 0, offset, b"k", value)
    if choice == 1 and isinstance(bad.value, dict):  # a bad event among good ones
        offset = next(ledger.offsets)
        events = [*record["eventList"], {**bad.value}]
        value = encode({**record, "eventList": events}, False)
        ledger.values[offset] = value
        ledger.add_good(offset, record)
        ledger.bad.add((offset, len(events) - 1))
        return SourceRecord("events", 0, offset, b"k", value)
    if isinstance(bad.value, dict):  # the bad event alone in a record of this group
        alone = {"trackingId": tracking_id, "sessionId": "s", "eventList": [bad.value]}
        offset = next(ledger.offsets)
        ledger.values[offset] = value = encode(alone, False)
        ledger.bad.add((offset, 0))
        return SourceRecord("events", 0, offset, b"k", value)
    # The unit strategies' records name tracker "tid"; name this group's, so each record is
    # refused for its own fault rather than for an unknown tracker.
    value = bad.value
    if value is not None and value[:1] == b"{":
        value = value.replace(b'"tid"', json.dumps(tracking_id).encode())
    return _bad_record(ledger, value)


def _bad_record(ledger: Ledger, value: bytes | None) -> SourceRecord:
    offset = next(ledger.offsets)
    ledger.values[offset] = value
    ledger.bad.add((offset, None))
    return SourceRecord("events", 0, offset, b"k", value)


def _wrong_schema_ids(
    ledger: Ledger, settings: ConnectorSettings, tracking_id: str
) -> list[SourceRecord]:
    """Avro under the Interactions schema's id and under ids no schema has."""
    registry = open_registry(settings)
    envelope = registry.get(settings.dataset_group, ENVELOPE)
    interactions = registry.get(settings.dataset_group, "interactions")
    record = {
        "trackingId": tracking_id,
        "sessionId": "s",
        "eventList": [{"eventType": "click", "itemId": "i", "sentAt": 1_700_000_000}],
    }
    body = encode(record, True, envelope.id)[5:]
    headers = [struct.pack(">bI", 0, i) for i in (interactions.id, 2**32 - 1, 123_456)]
    return [_bad_record(ledger, header + body) for header in headers]


def _process(
    processor: EventProcessor,
    settings: ConnectorSettings,
    ledger: Ledger,
    records: list[SourceRecord],
) -> None:
    topic = settings.topics.events
    sourced = [SourceRecord(topic, 0, r.offset, r.key, r.value) for r in records]
    report = processor.process(sourced)
    assert report.duplicates == 0
    assert report.dead == sum(1 for where in ledger.bad if where[0] in {r.offset for r in records})


def _check_dataset(settings: ConnectorSettings, ledger: Ledger) -> None:
    messages = read_topic(settings, settings.topics.interactions)
    rows = decode_rows(settings, messages)
    found = {
        (int(m.headers["streamrec.offset"]), int(m.headers["streamrec.event_index"])): row
        for m, row in zip(messages, rows, strict=True)
    }
    assert len(messages) == len(found) == len(ledger.good)
    for where, (subject, event) in ledger.good.items():
        row = found[where]
        assert row["USER_ID"] == subject.id
        assert (row["ITEM_ID"], row["TIMESTAMP"]) == (event["itemId"], int(event["sentAt"]))
        assert row["EVENT_VALUE"] == event["eventValue"]


def _check_dead_letters(settings: ConnectorSettings, ledger: Ledger) -> None:
    letters = read_topic(settings, settings.topics.deadletter)
    found = {}
    for letter in letters:
        index = letter.headers.get("streamrec.event_index")
        where = (int(letter.headers["streamrec.offset"]), int(index) if index else None)
        assert where not in found
        assert letter.headers["streamrec.reason"].strip()
        assert letter.headers["streamrec.topic"] == settings.topics.events
        assert letter.value == ledger.values[where[0]]  # the original bytes, untouched
        found[where] = letter
    assert set(found) == ledger.bad


def _check_histories(settings: ConnectorSettings, client: redis.Redis, ledger: Ledger) -> None:
    keys = Keys(settings.dataset_group)
    for subject, event in ledger.good.values():
        stored = cast(list[bytes], client.zrange(keys.history(subject), 0, -1))
        members = [json.loads(m) for m in stored]
        wanted = (event["itemId"], int(event["sentAt"]), event["eventValue"])
        assert wanted in [(m["item"], m["ts"], m["value"]) for m in members], (subject, event)


def _check_keys(settings: ConnectorSettings, ledger: Ledger, new: set[bytes]) -> None:
    """Every new key is some group's; this group's follow the layout; and none of this
    group's ids (escaped, as only keys.py would write them) appears under another group."""
    base = Keys(settings.dataset_group).base
    escaped = {e for e in (quote(i, safe="-._~") for i in ledger.ids) if "%" in e and len(e) > 8}
    for raw in new:
        key = raw.decode()
        match = GROUP_KEY.match(key)
        assert match is not None, f"key outside any group namespace: {key!r}"
        if key.startswith(base):
            assert LAYOUT.fullmatch(key.removeprefix(base)), key
        else:
            assert not any(e in key for e in escaped), f"our id in another group's key {key!r}"
