"""What batch n+1 takes from batch n when it is prepared while n is still in flight.

The connector plans and pre-checks batch n+1 while batch n waits for the broker and its Redis
apply, so n's dedup markers and stitches may not be in Redis yet. n+1 must still see them as
it would have after n's apply: n's markers as recorded, n's sessions as linked to their users,
and each stitched session's markers as its user's (the apply merges them). Pure, so unit-tested
without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from connector.keys import Subject
from connector.records import AcceptedEvent, Stitch

Marker = tuple[str, str]  # (subject hash tag, marker)


@dataclass(frozen=True)
class Carried:
    """What a batch leaves for the next one: the markers its apply will leave in Redis, and
    its stitches (session -> user)."""

    markers: frozenset[Marker] = frozenset()
    links: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, fresh: list[AcceptedEvent], stitches: list[Stitch], window: int) -> Carried:
        """The carry of a batch that appends `fresh` and applies `stitches`; `window` is the
        dedup window the apply trims each subject's markers to."""
        links: dict[str, str] = {}
        for stitch in stitches:
            links.setdefault(stitch.session_id, stitch.user_id)
        return cls(kept_markers(fresh, window), links)


@dataclass(frozen=True)
class Carry:
    """What the batch being prepared takes as recorded beyond what Redis holds."""

    markers: frozenset[Marker] = frozenset()
    merged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # user -> session tags

    def tags(self, subject: Subject) -> tuple[str, ...]:
        """Whose markers an event of `subject` is checked against: its own, and those of the
        sessions the batch in flight merges into it."""
        sessions = self.merged.get(subject.id, ()) if subject.kind == "u" else ()
        return (subject.tag, *sessions)


NOTHING = Carry()


def sessions_to_look_up(anonymous: set[str], previous: Carried | None) -> set[str]:
    """The sessions whose Redis link the plan needs: the batch's anonymous ones, and those
    the batch in flight stitches (whether its stitch takes, or one was there before)."""
    return anonymous | set(previous.links) if previous is not None else anonymous


def resolve(
    anonymous: set[str], stored: Mapping[str, str], previous: Carried | None
) -> tuple[dict[str, str], Carry]:
    """The links to plan with and the carry to pre-check with.

    `stored` holds the Redis links of `sessions_to_look_up`. A link already in Redis wins over
    the batch in flight's stitch, as the apply's SET NX makes it; so a stitch merges the
    session into its user only if Redis holds no link for the session yet, or that one."""
    links = {session: stored[session] for session in anonymous if session in stored}
    if previous is None:
        return links, NOTHING
    merged: dict[str, tuple[str, ...]] = {}
    for session, user in previous.links.items():
        if stored.get(session, user) != user:
            continue
        if session in anonymous:
            links.setdefault(session, user)
        merged[user] = (*merged.get(user, ()), Subject("s", session).tag)
    return links, Carry(previous.markers, merged)


def kept_markers(events: Iterable[AcceptedEvent], window: int) -> frozenset[Marker]:
    """The markers of `events` that the apply's trim at the end of their batch keeps: those
    within `window` of their subject's newest event in the batch. (A login's merged markers
    and the per-subject bound can trim more in Redis: docs/guarantees.md says what follows.)"""
    timed = [(event.subject.tag, event.row["TIMESTAMP"], event.markers) for event in events]
    newest: dict[str, int] = {}
    for tag, ts, _ in timed:
        newest[tag] = max(ts, newest.get(tag, ts))
    return frozenset(
        (tag, marker)
        for tag, ts, markers in timed
        if ts >= newest[tag] - window
        for marker in markers
    )
