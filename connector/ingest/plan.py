"""Turn a batch of PutEvents records into accepted events, dead letters and stitches.

Pure: everything it needs from Redis (served lists for implicit impressions, sessions already
stitched to users) is fetched by the caller and passed in, so it is unit-tested without a
server, and the same batch always gives the same plan.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connector.exceptions import InvalidEventError
from connector.ingest import fingerprint, limits
from connector.ingest.rows import interaction_row
from connector.keys import Subject
from connector.records import (
    UNDEFINED_SOURCE,
    AcceptedEvent,
    BatchPlan,
    DeadLetter,
    ServedList,
    SourceRecord,
    Stitch,
)
from connector.registry.rules import DatasetSchema

# A record's value to its PutEvents envelope; None for a record a source mapping skips.
Decoder = Callable[[bytes], dict[str, Any] | None]


@dataclass(frozen=True)
class Envelope:
    """A decoded record whose tracker and record-level limits passed."""

    source: SourceRecord
    user_id: str | None
    session_id: str
    events: list[Any]
    size: int  # bytes of the whole record: no event in it can be larger


@dataclass(frozen=True)
class PlanContext:
    """What the plan is checked against: the group's tracker and Interactions schema."""

    tracking_id: str | None
    schema: DatasetSchema
    decode: Decoder


def open_envelopes(
    records: list[SourceRecord], context: PlanContext, plan: BatchPlan
) -> list[Envelope]:
    """Decode each record and check its tracker; failures become dead letters in `plan`,
    records the decoder skips are left out."""
    envelopes = []
    for record in records:
        try:
            opened = _open(record, context)
        except InvalidEventError as exc:
            plan.dead.append(DeadLetter(record, str(exc)))
            continue
        if opened is not None:
            envelopes.append(opened)
    return envelopes


def _open(record: SourceRecord, context: PlanContext) -> Envelope | None:
    if record.value is None:
        raise InvalidEventError("record has no value (a tombstone is not an event)")
    envelope = context.decode(record.value)
    if envelope is None:
        return None
    tracking_id = envelope.get("trackingId")
    if tracking_id is None or tracking_id == "":
        raise InvalidEventError("trackingId is missing")
    if not isinstance(tracking_id, str):
        raise InvalidEventError(
            f"trackingId must be a string, got {type(tracking_id).__name__} "
            f"{reprlib.repr(tracking_id):.80}"
        )
    if tracking_id != context.tracking_id:
        raise InvalidEventError(f"unknown trackingId {tracking_id[:80]!r} for this group")
    events = limits.check_envelope(envelope)
    return Envelope(
        record, envelope.get("userId"), envelope["sessionId"], events, len(record.value)
    )


def recommendation_ids(envelopes: list[Envelope]) -> set[str]:
    """The recommendationIds whose served lists may give implicit impressions."""
    return {
        event["recommendationId"]
        for envelope in envelopes
        for event in envelope.events
        if isinstance(event, dict) and isinstance(event.get("recommendationId"), str)
    }


def anonymous_sessions(envelopes: list[Envelope]) -> set[str]:
    """Sessions of events without a userId: they may already be stitched to a user."""
    return {envelope.session_id for envelope in envelopes if not envelope.user_id}


def plan_events(
    envelopes: list[Envelope],
    context: PlanContext,
    served: Mapping[str, ServedList],
    links: Mapping[str, str],
    plan: BatchPlan,
) -> BatchPlan:
    """Accept or reject every event, in order; record the stitches a login causes."""
    linked = dict(links)
    for envelope in envelopes:
        if envelope.user_id and envelope.session_id not in linked:
            linked[envelope.session_id] = envelope.user_id
            plan.stitches.append(Stitch(envelope.session_id, envelope.user_id))
        subject = _subject(envelope, linked)
        for index, event in enumerate(envelope.events):
            try:
                plan.accepted.append(_accept(envelope, index, event, subject, served, context))
            except InvalidEventError as exc:
                plan.dead.append(DeadLetter(envelope.source, str(exc), index))
    return plan


def _subject(envelope: Envelope, linked: Mapping[str, str]) -> Subject:
    if envelope.user_id:
        return Subject("u", envelope.user_id)
    if envelope.session_id in linked:
        return Subject("u", linked[envelope.session_id])
    return Subject("s", envelope.session_id)


def _accept(
    envelope: Envelope,
    index: int,
    raw_event: Any,
    subject: Subject,
    served: Mapping[str, ServedList],
    context: PlanContext,
) -> AcceptedEvent:
    event = limits.check_event(raw_event, envelope.size)
    served_list = served.get(event.get("recommendationId") or "")
    impression = event.get("impression")
    if impression is None and served_list is not None:
        impression = served_list.items  # implicit impression; an explicit list wins
    row = interaction_row(event, subject.id, impression, context.schema)
    return AcceptedEvent(
        source=envelope.source,
        event_index=index,
        subject=subject,
        session_id=envelope.session_id,
        row=row,
        markers=_markers(_marked_as(envelope, subject), event),
        history_member=history_member(row, context.schema, impression),
        event_type=event["eventType"],
        attribution=_attribution(event, served_list),
    )


def _marked_as(envelope: Envelope, subject: Subject) -> Subject:
    """Whose content marker an event carries: its subject's, but for an event sent without
    a userId, its session's even once the session is linked to a user. Such an event was
    marked as the session's when it first arrived before the login; a replay after the
    login (a crash left it uncommitted) must carry the same marker to be recognised in the
    user's markers, which the login merged the session's into."""
    return subject if envelope.user_id else Subject("s", envelope.session_id)


def _markers(subject: Subject, event: dict[str, Any]) -> tuple[str, ...]:
    content = fingerprint.content_marker(subject.kind, subject.id, event)
    event_id = fingerprint.event_id_marker(event)
    return (content, event_id) if event_id else (content,)


def _attribution(event: dict[str, Any], served_list: ServedList | None) -> str:
    """eventAttributionSource, else the source behind the recommendationId, else undefined."""
    attribution = event.get("metricAttribution")
    explicit = attribution.get("eventAttributionSource") if isinstance(attribution, dict) else None
    if isinstance(explicit, str) and explicit:
        return explicit
    return served_list.source if served_list is not None else UNDEFINED_SOURCE


def history_member(row: dict[str, Any], schema: DatasetSchema, impression: list[str] | None) -> str:
    """The event as kept in the session history: deterministic, so a replay is a no-op.
    `streamrec rebuild` makes the same member from the event's dataset row."""
    context = {spec.name: row[spec.name] for spec in schema.metadata_fields}
    entry = {
        "item": row["ITEM_ID"],
        "type": row.get("EVENT_TYPE"),
        "value": row.get("EVENT_VALUE"),
        "ts": row["TIMESTAMP"],
        "context": {key: value for key, value in context.items() if value is not None},
        "impression": impression,
    }
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()
