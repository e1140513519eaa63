"""What the ingest scripts take for each event: a flat list of values per batch, packed as
one MessagePack array, which Redis's Lua unpacks at a fraction of the cost of JSON objects
and redis-py sends as one argument (docs/performance-log.md, Ingest, session 13).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgpack

from connector.model.history import interacted_member
from connector.records import AcceptedEvent

# One event as apply_batch.lua takes it (EVENT_FIELDS values): subject hash tag, content
# marker, eventId marker or "", event time, history score, history member, interacted
# member, event type, attribution source, time bucket.
EventOp = tuple[str, str, str, int, float, str, str, str, str, int]


def event_op(event: AcceptedEvent, bucket_seconds: int) -> EventOp:
    """The apply script's values of one event."""
    ts = event.row["TIMESTAMP"]
    markers = event.markers
    return (
        event.subject.tag,
        markers[0],
        markers[1] if len(markers) > 1 else "",
        ts,
        history_score(event),
        event.history_member,
        interacted_member(event.row["ITEM_ID"], event.row.get("EVENT_TYPE")).decode(),
        event.event_type,
        event.attribution,
        ts - ts % bucket_seconds,
    )


def packed_ops(ops: Iterable[EventOp]) -> bytes:
    """apply_batch.lua's second argument: the events' values, flat."""
    packed: bytes = msgpack.packb([value for op in ops for value in op])
    return packed


def packed_probes(probes: Iterable[tuple[str, tuple[str, ...]]]) -> bytes:
    """known_markers.lua's second argument: three values per (subject hash tag, markers)."""
    flat: list[str] = []
    for tag, markers in probes:
        flat += (tag, markers[0], markers[1] if len(markers) > 1 else "")
    packed: bytes = msgpack.packb(flat)
    return packed


def history_score(event: AcceptedEvent) -> float:
    """The event's score in its subject's history: its event time in seconds, plus a
    fraction from its place in the events topic (offset, then index in its record), so that
    events of the same second keep the order they arrived in instead of the order of their
    JSON (a sorted set orders equal scores by member). Deterministic, so a replay or a
    rebuild gives the same score; the fraction stays below a second, so the time order of
    different seconds is kept, and wraps every 100,000 offsets of a partition."""
    place = (event.source.offset % 100_000) * 10 + min(event.event_index, 9)
    return int(event.row["TIMESTAMP"]) + place / 1_000_000
