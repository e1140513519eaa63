"""A user's recent events as the model reads them, from Redis or from the training data.

The connector keeps each user's (or anonymous session's) history in a Redis sorted set whose
members are JSON documents (connector/ingest/plan.py `history_member`). The model computes a
user state from a list of HistoryEntry, and evaluation builds the same entries from the
training data (worker.data.interactions.history_entries), so offline scores and served
recommendations go through one code path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

ABSENT = ""  # event type or context value not given (code 0 in every vocabulary)


@dataclass(frozen=True)
class HistoryEntry:
    """One past event of a user: what, which kind, when, in which context, and which items
    were shown with it (the impression, explicit or implicit)."""

    item: str
    event_type: str | None = None
    timestamp: int = 0
    context: Mapping[str, str] = field(default_factory=dict)
    impression: tuple[str, ...] = ()


class ItemEvent(Protocol):
    """What seen-item exclusion and `Interactions` filters read of an event."""

    @property
    def item(self) -> str: ...

    @property
    def event_type(self) -> str | None: ...


class Interacted(NamedTuple):
    """An item a user interacted with and the event type of that interaction: one member of
    the connector's interacted-items set, which reaches much further back than the history
    the model reads (docs/redis-keys.md)."""

    item: str
    event_type: str | None


def interacted_member(item: str, event_type: str | None) -> bytes:
    """The interacted-items member of an event: the same for every event of that item and
    type, so the set holds each pair once whatever the replays."""
    return orjson.dumps([item, event_type])


def parse_pairs(members: Sequence[bytes | str]) -> list[list[Any]]:
    """The [item, event type] pairs of an interacted-items set's members, parsed in one
    call (a heavy user's set holds thousands)."""
    if not members:
        return []
    if isinstance(members[0], str):  # a client decoding replies (Redis gives bytes)
        members = [m.encode() if isinstance(m, str) else m for m in members]
    pairs: list[list[Any]] = orjson.loads(b"[" + b",".join(members) + b"]")  # type: ignore[arg-type]
    return pairs


def parse_member(member: bytes | str) -> HistoryEntry:
    """A HistoryEntry from one member of the connector's history sorted set (positional
    arguments and no comprehension for what is absent: a list refresh parses up to 50 of
    these per user, and this was a tenth of its cost)."""
    entry: dict[str, Any] = orjson.loads(member)
    context, impression = entry.get("context"), entry.get("impression")
    return HistoryEntry(
        str(entry["item"]),
        entry.get("type"),
        int(entry.get("ts") or 0),
        {key: str(value) for key, value in context.items()} if context else {},
        tuple(map(str, impression)) if impression else (),
    )


def history_digest(members: Sequence[bytes | str]) -> str:
    """A short fingerprint of the history members a list was computed from, in order. The
    API compares it with the members it reads itself, to know whether a precomputed list
    was made from exactly the history it would rank from now."""
    digest = hashlib.blake2b(digest_size=16)
    for member in members:
        digest.update(member.encode() if isinstance(member, str) else member)
        digest.update(b"\x00")  # no member contains NUL (they are JSON)
    return digest.hexdigest()
