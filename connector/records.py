"""What the ingest path passes around: consumed records, dead letters, accepted events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.keys import Subject

UNDEFINED_SOURCE = "SOURCE_NAME_UNDEFINED"


@dataclass(frozen=True)
class SourceRecord:
    """One consumed Kafka record, as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    """A record (or one event of it) that failed, with the reason; its bytes stay untouched."""

    source: SourceRecord
    reason: str
    event_index: int | None = None


@dataclass(frozen=True)
class ServedList:
    """A list served under a recommendationId: the implicit impression and its source."""

    items: list[str]
    source: str


@dataclass(frozen=True)
class AcceptedEvent:
    """One valid event: its dataset row and everything its Redis effects need."""

    source: SourceRecord
    event_index: int
    subject: Subject
    session_id: str
    row: dict[str, Any]
    markers: tuple[str, ...]
    history_member: str
    event_type: str
    attribution: str


@dataclass(frozen=True)
class Stitch:
    """Merge an anonymous session's history into a user's (after the batch's events, which
    were already attributed to the user from the login on)."""

    session_id: str
    user_id: str


@dataclass
class BatchPlan:
    """What a batch of event records becomes, before any I/O."""

    accepted: list[AcceptedEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    stitches: list[Stitch] = field(default_factory=list)
