"""Hostile records against the pure ingest planner (decode, limits, rows, plan).

Why: one record that crashes the planner crashes the connector, which restarts, takes the
same batch and crashes again; the partition stalls behind a poison pill. So whatever bytes
arrive, the planner must answer with accepted events and dead letters with a reason, never
an exception, and must not let a hostile but legal id bend a Redis key out of its namespace.
The decoder is the product's own (`EventProcessor.decode`, JSON or Confluent-wire Avro) over
an in-memory registry, so the wrong-schema-id paths are the real ones.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from connector import wire
from connector.exceptions import SchemaNotFoundError
from connector.ingest import plan as planner
from connector.ingest.limits import MAX_EVENT_BYTES, MAX_SENT_AT
from connector.ingest.processor import EventProcessor
from connector.keys import Keys, Subject
from connector.records import BatchPlan, SourceRecord
from connector.registry.rules import check_schema
from connector.registry.schema import ENVELOPE, RegisteredSchema

# Bounded so the module runs in seconds on 2 cores; raise max_examples locally to dig deeper.
HOSTILE = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

GROUP, TRACKING = "shop", "tid"
SCHEMA = check_schema("interactions", schemas.load("interactions.avsc"))
PARSED_ENVELOPE = cast(dict[str, Any], fastavro.parse_schema(schemas.load(schemas.ENVELOPE_FILE)))
ENVELOPE_ID, INTERACTIONS_ID, FOREIGN_ID, UNKNOWN_ID = 3, 5, 8, 999
# Event types stay within the shipped schema's budget of 6 distinct types.
EVENT_TYPES = ("click", "wa:tch", "{buy}", "*?[x]", "ünï cödé", "tab\there")
KEY_SAFE = re.compile(r"[A-Za-z0-9%._~-]+")


class _Registry:
    """The two schema ids a group's producers may use, and one of another group."""

    def __init__(self) -> None:
        self._by_id = {
            ENVELOPE_ID: RegisteredSchema(
                ENVELOPE_ID, GROUP, ENVELOPE, 1, {}, PARSED_ENVELOPE, None
            ),
            INTERACTIONS_ID: RegisteredSchema(
                INTERACTIONS_ID, GROUP, "interactions", 1, {}, SCHEMA.parsed, SCHEMA
            ),
            FOREIGN_ID: RegisteredSchema(
                FOREIGN_ID, "other", ENVELOPE, 1, {}, PARSED_ENVELOPE, None
            ),
        }

    def by_id(self, schema_id: int) -> RegisteredSchema:
        if schema_id not in self._by_id:
            raise SchemaNotFoundError(f"no schema has id {schema_id}")
        return self._by_id[schema_id]


_UNUSED = cast(Any, None)  # decode needs only the registry and the group
DECODE = EventProcessor(GROUP, cast(Any, _Registry()), _UNUSED, _UNUSED, _UNUSED, _UNUSED).decode
CONTEXT = planner.PlanContext(TRACKING, SCHEMA, DECODE)


def run(values: list[bytes | None]) -> BatchPlan:
    """The plan of one batch whose record at offset n holds values[n]."""
    records = [SourceRecord("events", 0, n, b"k", value) for n, value in enumerate(values)]
    result = BatchPlan()
    envelopes = planner.open_envelopes(records, CONTEXT, result)
    return planner.plan_events(envelopes, CONTEXT, {}, {}, result)


def outcomes(result: BatchPlan) -> dict[tuple[int, int | None], str | None]:
    """(offset, event index or None for a whole record) -> None if accepted, else the reason;
    asserts that nothing is both, nor decided twice."""
    found: dict[tuple[int, int | None], str | None] = {}
    for event in result.accepted:
        found[(event.source.offset, event.event_index)] = None
    for letter in result.dead:
        where = (letter.source.offset, letter.event_index)
        assert where not in found, f"{where} decided twice"
        assert isinstance(letter.reason, str) and letter.reason.strip(), letter
        found[where] = letter.reason
    assert len(found) == len(result.accepted) + len(result.dead)
    return found


def assert_conserved(values: list[bytes | None], result: BatchPlan) -> None:
    """Every record is dead-lettered whole, or each of its events 0..k-1 is decided once."""
    decided = outcomes(result)
    for offset in range(len(values)):
        indexes = sorted(i for (o, i) in decided if o == offset and i is not None)
        whole = (offset, None) in decided
        assert whole != bool(indexes), (offset, whole, indexes)
        assert indexes == list(range(len(indexes)))


def expected_users(records: list[dict[str, Any]]) -> list[str]:
    """Whose events each record holds: its userId; else the user its session logged in as
    earlier (stitching); else the anonymous session."""
    linked: dict[str, str] = {}
    users = []
    for record in records:
        user, session = record.get("userId"), record["sessionId"]
        if user:
            linked.setdefault(session, user)
        users.append(user or linked.get(session, session))
    return users


# ---------------------------------------------------------------------------- strategies

HOSTILE_CHARS = st.sampled_from(list(":{}*?[]\\%/|\"' \t\r\n\x00\x1b\x7f\u2028\ufeff😀"))
ids = st.text(HOSTILE_CHARS | st.characters(codec="utf-8"), min_size=1, max_size=64) | st.text(
    HOSTILE_CHARS, min_size=1, max_size=256
)
good_times = st.integers(0, MAX_SENT_AT - 1) | st.floats(0, MAX_SENT_AT - 1, allow_nan=False)
bad_times = st.integers(max_value=-1) | st.integers(MAX_SENT_AT, 2**63 - 1)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


json_values = st.recursive(scalars, _containers, max_leaves=20)
finite_json_values = st.recursive(
    scalars.filter(lambda v: not isinstance(v, float) or math.isfinite(v)),
    _containers,
    max_leaves=20,
)


@st.composite
def good_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with hostile but legal ids, within the 10 KB event limit."""
    event: dict[str, Any] = {
        "eventType": draw(st.sampled_from(EVENT_TYPES)),
        "itemId": draw(ids),
        "sentAt": draw(good_times),
    }
    optional = {
        "eventId": ids,
        "eventValue": st.floats(-(2.0**100), 2.0**100, width=32),
        "impression": st.lists(ids.map(lambda text: text[:32]), min_size=1, max_size=5),
        "recommendationId": ids,
        "metricAttribution": ids.map(lambda text: {"eventAttributionSource": text}),
        "properties": st.fixed_dictionaries({}, optional={"device": ids, "location": ids}),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(strategy)
    return event


@st.composite
def good_records(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """(a valid PutEvents record, whether to send it as Avro rather than JSON)."""
    record: dict[str, Any] = {
        "trackingId": TRACKING,
        "sessionId": draw(ids),
        "eventList": draw(st.lists(good_events(), min_size=1, max_size=3)),
    }
    if draw(st.booleans()):
        record["userId"] = draw(ids)
    return record, draw(st.booleans())


def encode(record: dict[str, Any], avro: bool, schema_id: int = ENVELOPE_ID) -> bytes:
    if avro:
        return wire.encode(schema_id, PARSED_ENVELOPE, _avro_shape(record))
    return json.dumps(record, allow_nan=True).encode()


def _avro_shape(record: dict[str, Any]) -> dict[str, Any]:
    events = [
        {**event, "sentAt": int(event["sentAt"])}
        if isinstance(event.get("sentAt"), float) and math.isfinite(event["sentAt"])
        else event
        for event in record["eventList"]
    ]
    return {**record, "eventList": events}


@dataclass(frozen=True)
class Bad:
    """A hostile event (or whole record) and the reasons it may be refused with."""

    value: Any
    reasons: tuple[str, ...]


def _event_with(**changes: Any) -> dict[str, Any]:
    return {"eventType": "click", "itemId": "i", "sentAt": 1_700_000_000, **changes}


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


ID_RULE = "must be a string of 1 to 256 characters"
bad_events = st.one_of(
    bad_times.map(lambda t: Bad(_event_with(sentAt=t), ("sentAt must be Unix epoch seconds",))),
    st.sampled_from(["yesterday", [1], {"s": 1}, True]).map(
        lambda t: Bad(_event_with(sentAt=t), ("TIMESTAMP must be long",))
    ),
    st.just(Bad({"eventType": "click", "sentAt": 1}, ("ITEM_ID is required",))),
    st.just(Bad({"itemId": "i", "sentAt": 1}, ("eventType must be a string",))),
    st.sampled_from([1, None, ["click"], "", "x" * 257]).map(
        lambda t: Bad(_event_with(eventType=t), (f"eventType {ID_RULE}",))
    ),
    st.text(min_size=257, max_size=3000).map(
        lambda t: Bad(_event_with(itemId=t), (f"itemId {ID_RULE}",))
    ),
    st.sampled_from([7, ["i"], {"i": 1}]).map(
        lambda t: Bad(_event_with(itemId=t), (f"itemId {ID_RULE}",))
    ),
    st.sampled_from(["1.5", [1], True]).map(
        lambda v: Bad(_event_with(eventValue=v), ("EVENT_VALUE must be a finite float",))
    ),
    st.integers(26, 200).map(
        lambda n: Bad(_event_with(impression=["i"] * n), ("impression must be a list of 1 to 25",))
    ),
    st.sampled_from(["a|b", [], {"a": 1}]).map(
        lambda v: Bad(_event_with(impression=v), ("impression must be a list of 1 to 25",))
    ),
    st.sampled_from([[1], "not json {", "[1]", 5]).map(
        lambda v: Bad(
            _event_with(properties=v), ("properties must be", "not valid JSON", "JSON object")
        )
    ),
    st.sampled_from(["x", [1], 3]).map(
        lambda v: Bad(_event_with(metricAttribution=v), ("metricAttribution must be an object",))
    ),
    st.sampled_from(["genre", "numRatings", "EVENT_TYPE"]).map(
        lambda k: Bad(_event_with(properties={k: "x"}), ("which is not a metadata field",))
    ),
    finite_json_values.filter(lambda v: not isinstance(v, str | type(None))).map(
        lambda v: Bad(_event_with(properties={"device": v}), ("DEVICE must be string",))
    ),
    st.integers(256, 1000).map(
        lambda d: Bad(_event_with(extra=_nested(d)), ("cannot be encoded as JSON",))
    ),
    st.integers(256, 1000).map(
        lambda d: Bad(
            _event_with(properties={"device": _nested(d)}),
            ("DEVICE must be string", "cannot be encoded as JSON"),
        )
    ),
    st.integers(MAX_EVENT_BYTES, 3 * MAX_EVENT_BYTES).map(
        lambda n: Bad(_event_with(properties={"device": "x" * n}), ("are accepted",))
    ),
)


def _record_bytes(changes: dict[str, Any], avro: bool = False) -> bytes:
    record = {"trackingId": TRACKING, "sessionId": "s", "eventList": [_event_with()], **changes}
    return encode(record, avro)


@st.composite
def truncated(draw: st.DrawFn) -> Bad:
    """A valid JSON record cut short: no proper prefix of a JSON object is valid JSON."""
    whole = _record_bytes({"userId": draw(ids)})
    return Bad(whole[: draw(st.integers(0, len(whole) - 1))], ("not valid JSON",))


def _avro_garbage(tail: bytes, schema_id: int) -> bytes:
    return struct.pack(">bI", 0, schema_id) + tail


bad_records = st.one_of(
    st.binary(max_size=300)
    .filter(lambda b: b[:1] not in (b"{", b"\x00"))
    .map(lambda b: Bad(b, ("not valid JSON", "must be a JSON object", "trackingId is missing"))),
    truncated(),
    st.integers(1025, 3000).map(lambda d: Bad(("[" * d + "]" * d).encode(), ("not valid JSON",))),
    st.sampled_from([math.nan, math.inf, -math.inf]).map(
        lambda x: Bad(
            _record_bytes({"eventList": [_event_with(eventValue=x)]}), ("not valid JSON",)
        )
    ),
    st.sampled_from([b"[]", b'"x"', b"1", b"null", b"true"]).map(
        lambda b: Bad(b, ("must be a JSON object",))
    ),
    st.just(Bad(None, ("record has no value",))),
    st.sampled_from(["other", "", None, 5, ["tid"], _nested(900)]).map(
        lambda t: Bad(_record_bytes({"trackingId": t}), ("trackingId",))
    ),
    st.sampled_from(["", 5, None, ["s"], "s" * 257]).map(
        lambda s: Bad(_record_bytes({"sessionId": s}), (f"sessionId {ID_RULE}",))
    ),
    st.sampled_from(["", 5, ["u"], {"u": 1}, "u" * 257]).map(
        lambda u: Bad(_record_bytes({"userId": u}), (f"userId {ID_RULE}",))
    ),
    st.sampled_from([[], {}, "events", None, [_event_with()] * 11]).map(
        lambda e: Bad(_record_bytes({"eventList": e}), ("eventList must be a list of 1 to 10",))
    ),
    # Avro in the Confluent wire format with a wrong or unknown schema id, or bytes that are
    # not the record the header promises.
    st.integers(0, 2**32 - 1)
    .filter(lambda i: i not in (ENVELOPE_ID, INTERACTIONS_ID, FOREIGN_ID))
    .map(lambda i: Bad(_avro_garbage(b"\x02\x02", i), (f"unknown schema id {i}",))),
    st.sampled_from([INTERACTIONS_ID, FOREIGN_ID]).map(
        lambda i: Bad(
            _avro_garbage(_record_bytes({}, avro=True)[5:], i), ("not a PutEvents schema",)
        )
    ),
    st.binary(max_size=200).map(lambda b: Bad(_avro_garbage(b, ENVELOPE_ID), ())),
)


# --------------------------------------------------------------------------------- tests


@HOSTILE
@given(
    st.lists(
        st.binary(max_size=2000) | st.binary(max_size=300).map(lambda b: b"\x00" + b), max_size=8
    )
)
def test_random_bytes_are_dead_lettered_and_never_raise(values: list[bytes]) -> None:
    result = run(list(values))
    assert result.accepted == []
    assert sorted(d.source.offset for d in result.dead) == list(range(len(values)))


@HOSTILE
@given(good_records(), st.data())
def test_any_value_in_any_field_never_raises(
    pair: tuple[dict[str, Any], bool], data: st.DataObject
) -> None:
    record, _ = pair
    event = record["eventList"][0]
    target = data.draw(st.sampled_from([record, event]))
    name = data.draw(st.sampled_from([*target, "properties", "metricAttribution", "extra"]))
    target[name] = data.draw(json_values)
    raw = json.dumps(record, allow_nan=True).encode()
    cut = data.draw(st.none() | st.integers(0, len(raw)))
    values: list[bytes | None] = [raw if cut is None else raw[:cut]]
    assert_conserved(values, run(values))


@HOSTILE
@given(st.lists(good_records(), min_size=1, max_size=5))
def test_valid_events_with_hostile_ids_and_times_are_all_accepted(
    pairs: list[tuple[dict[str, Any], bool]],
) -> None:
    values: list[bytes | None] = [encode(record, avro) for record, avro in pairs]
    result = run(values)
    assert result.dead == []
    accepted = {(e.source.offset, e.event_index): e for e in result.accepted}
    users = expected_users([record for record, _ in pairs])
    for offset, (record, _) in enumerate(pairs):
        for index, event in enumerate(record["eventList"]):
            row = accepted[(offset, index)].row
            assert row["USER_ID"] == users[offset]
            assert (row["ITEM_ID"], row["TIMESTAMP"]) == (event["itemId"], int(event["sentAt"]))
            assert row["EVENT_TYPE"] == event["eventType"]


@HOSTILE
@given(st.lists(good_records(), min_size=1, max_size=5))
def test_the_same_record_as_json_or_avro_gives_the_same_rows(
    pairs: list[tuple[dict[str, Any], bool]],
) -> None:
    as_json = run([encode(record, False) for record, _ in pairs])
    as_avro = run([encode(record, True) for record, _ in pairs])
    assert as_json.dead == as_avro.dead == []
    assert [e.row for e in as_json.accepted] == [e.row for e in as_avro.accepted]
    assert [e.history_member for e in as_json.accepted] == [
        e.history_member for e in as_avro.accepted
    ]


@HOSTILE
@given(
    st.lists(
        st.tuples(st.booleans(), good_records(), bad_events | bad_records, st.integers(0, 3)),
        min_size=1,
        max_size=8,
    )
)
def test_every_good_event_is_accepted_and_every_bad_one_dead_lettered_with_its_reason(
    cases: list[tuple[bool, tuple[dict[str, Any], bool], Bad, int]],
) -> None:
    values: list[bytes | None] = []
    expected: dict[tuple[int, int | None], tuple[str, ...] | None] = {}
    for offset, (use_bad, (record, avro), bad, position) in enumerate(cases):
        if isinstance(bad.value, dict):  # a bad event among good ones of a JSON record
            events = list(record["eventList"])
            where = min(position, len(events))
            events.insert(where, bad.value)
            record = {**record, "eventList": events[:10]}
            values.append(encode(record, False))
            for index in range(len(record["eventList"])):
                expected[(offset, index)] = bad.reasons if index == where else None
        elif use_bad:
            values.append(bad.value)
            expected[(offset, None)] = bad.reasons
        else:
            values.append(encode(record, avro))
            for index in range(len(record["eventList"])):
                expected[(offset, index)] = None
    result = run(values)
    decided = outcomes(result)
    assert set(decided) == set(expected)
    for place, reasons in expected.items():
        if reasons is None:
            assert decided[place] is None, (place, decided[place], values[place[0]])
        else:
            reason = decided[place]
            assert reason is not None, (place, values[place[0]])
            assert not reasons or any(r in reason for r in reasons), (reason, reasons)


@HOSTILE
@given(ids, ids)
def test_hostile_ids_stay_inside_their_key_namespace(user: str, item: str) -> None:
    keys = Keys(GROUP)
    subject = Subject("u", user)
    for key in (
        keys.history(subject),
        keys.seen(subject),
        keys.recommendations(subject),
        keys.session_user(user),
        keys.user(user),
    ):
        tail = key.removeprefix(keys.base)
        match = re.fullmatch(r"\{[us]:([^{}]*)\}:(history|seen|recs|user|meta)", tail)
        assert key.startswith(keys.base) and match is not None, key
        assert KEY_SAFE.fullmatch(match.group(1)) and unquote(match.group(1)) == user
    item_key = re.fullmatch(r"item:\{i:([^{}]*)\}", keys.item(item).removeprefix(keys.base))
    assert item_key is not None and KEY_SAFE.fullmatch(item_key.group(1))
    served = keys.served(item).removeprefix(keys.base + "served:")
    assert KEY_SAFE.fullmatch(served) and unquote(served) == item
    assert Subject.from_tag(subject.tag) == subject


def test_avro_can_carry_nan_and_infinities_and_they_are_refused() -> None:
    """JSON cannot hold NaN (orjson refuses the token), but Avro floats and doubles can."""
    values: list[bytes | None] = []
    for x in (math.nan, math.inf, -math.inf):
        values.append(_record_bytes({"eventList": [_event_with(eventValue=x)]}, avro=True))
        values.append(
            _record_bytes({"eventList": [_event_with(properties={"device": x})]}, avro=True)
        )
    result = run(values)
    reasons = [d.reason for d in result.dead]
    assert result.accepted == [] and len(reasons) == 6
    assert all(
        r.startswith(("EVENT_VALUE must be a finite float", "DEVICE must be string"))
        for r in reasons
    )


def test_time_range_edges() -> None:
    values: list[bytes | None] = [
        _record_bytes({"eventList": [_event_with(sentAt=t)]})
        for t in (0, MAX_SENT_AT - 1, MAX_SENT_AT, -1, 1.7e12, 2**64, 0.5)
    ]
    decided = outcomes(run(values))
    assert [decided[(n, 0)] is None for n in range(len(values))] == [
        True,
        True,
        False,
        False,
        False,
        False,
        True,
    ]
    assert "sentAt must be Unix epoch seconds from 0 to 4102444799" in str(decided[(2, 0)])


def test_a_bad_avro_tail_is_refused_with_fastavros_reason() -> None:
    valid = _record_bytes({}, avro=True)
    decided = outcomes(run([valid[:-1], valid + b"\x00", _avro_garbage(b"\xff" * 12, ENVELOPE_ID)]))
    assert "does not decode with schema 3" in str(decided[(0, None)])
    assert "1 trailing bytes" in str(decided[(1, None)])
    assert decided[(2, None)] is not None
