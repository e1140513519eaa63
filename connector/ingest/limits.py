"""PutEvents' request limits, checked before a record's events are mapped to rows.

The numbers are Personalize's: 1-10 events per request, ids and event types of 1-256
characters, 1-25 impressions of 1-256 characters each, and (a streamrec limit in the same
spirit as Personalize's request quota) 10 KB per event once encoded as JSON. sentAt is Unix
epoch seconds from 1970 up to 2100 (exclusive): a fixed range, so the same record always
gets the same verdict, that refuses negative times and milliseconds sent as seconds, and
keeps one hostile far-future event from pushing a subject's dedup window past every real one.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from connector.exceptions import InvalidEventError
from connector.ingest.rows import decode_json

MAX_EVENTS_PER_RECORD = 10
MAX_EVENT_BYTES = 10 * 1024
MAX_ID_LENGTH = 256
MAX_IMPRESSIONS = 25
MAX_SENT_AT = 4_102_444_800  # 2100-01-01T00:00:00Z, exclusive


def check_envelope(envelope: dict[str, Any]) -> list[Any]:
    """The record's event list, after the record-level checks (ids and list length)."""
    _check_id(envelope, "sessionId", required=True)
    _check_id(envelope, "userId", required=False)
    events = envelope.get("eventList")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS_PER_RECORD:
        raise InvalidEventError(f"eventList must be a list of 1 to {MAX_EVENTS_PER_RECORD} events")
    return events


def check_event(event: Any, record_size: int | None = None) -> dict[str, Any]:
    """One event after the event-level checks; sentAt is normalised to whole seconds.

    `record_size` is the size of the record the event came in: when that is within the
    limit, no event of it can exceed it, and the event need not be measured.
    """
    if not isinstance(event, dict):
        raise InvalidEventError("each entry of eventList must be an object")
    if record_size is None or record_size > MAX_EVENT_BYTES:
        size = len(_encoded(event))
        if size > MAX_EVENT_BYTES:
            raise InvalidEventError(
                f"event is {size} bytes; at most {MAX_EVENT_BYTES} are accepted"
            )
    for name in ("eventType", "eventId", "itemId", "recommendationId"):
        _check_id(event, name, required=name == "eventType")
    _check_impression(event.get("impression"))
    attribution = event.get("metricAttribution")
    if attribution is not None and not isinstance(attribution, dict):
        raise InvalidEventError("metricAttribution must be an object")
    properties = event.get("properties")
    if isinstance(properties, str):  # the Personalize API sends a JSON string; keep one form
        properties = decode_json(properties.encode())
    return {**event, "sentAt": _seconds(event.get("sentAt")), "properties": properties}


def _encoded(value: Any) -> bytes:
    """`value` as JSON; InvalidEventError when it cannot be (nested deeper than orjson's
    limit of 255 levels, which json parsers accept up to 1024)."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError as exc:
        raise InvalidEventError(f"event cannot be encoded as JSON: {exc}") from exc


def _check_id(record: dict[str, Any], name: str, required: bool) -> None:
    value = record.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidEventError(f"{name} must be a string of 1 to {MAX_ID_LENGTH} characters")


def _check_impression(impression: Any) -> None:
    if impression is None:
        return
    if not isinstance(impression, list) or not 1 <= len(impression) <= MAX_IMPRESSIONS:
        raise InvalidEventError(f"impression must be a list of 1 to {MAX_IMPRESSIONS} item ids")
    for item in impression:  # a plain loop: a generator in all() cost more than the checks
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_ID_LENGTH:
            raise InvalidEventError(f"impression item ids must be strings of 1 to {MAX_ID_LENGTH}")


def _seconds(sent_at: Any) -> Any:
    """Epoch seconds as an int; fractional seconds are truncated; other values pass through
    to the schema check, which names the field."""
    if isinstance(sent_at, float) and math.isfinite(sent_at):
        sent_at = int(sent_at)
    if isinstance(sent_at, int) and not isinstance(sent_at, bool):
        if not 0 <= sent_at < MAX_SENT_AT:
            raise InvalidEventError(
                f"sentAt must be Unix epoch seconds from 0 to {MAX_SENT_AT - 1} "
                f"(before 2100), got {str(sent_at):.80}"
            )
    return sent_at
