"""Dedup identity of an event: Personalize keeps one of two events with the same timestamp
and identical properties, and ignores later events that reuse an eventId.

Both markers are scoped to the event's subject (user or session), which keeps them in that
subject's Redis slot.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from connector.exceptions import InvalidEventError

_IGNORED = ("eventId",)  # a resend with a new eventId is still the same event


def content_marker(subject_kind: str, subject_id: str, event: dict[str, Any]) -> str:
    """Marker of the event's content: every field but eventId, plus whose event it is."""
    content = {key: value for key, value in event.items() if key not in _IGNORED}
    try:
        canonical = orjson.dumps(
            [subject_kind, subject_id, content], option=orjson.OPT_SORT_KEYS, default=str
        )
    except orjson.JSONEncodeError as exc:  # nested past orjson's 255 levels: refuse the event
        raise InvalidEventError(f"event cannot be encoded as JSON: {exc}") from exc
    return "f:" + hashlib.blake2b(canonical, digest_size=16).hexdigest()


def event_id_marker(event: dict[str, Any]) -> str | None:
    """Marker of the event's eventId, if it has one."""
    event_id = event.get("eventId")
    return f"e:{event_id}" if event_id else None
