"""Reading what a user or session did, for everything that ranks from it.

One reader for the precomputed lists, the API, the dashboard and `rebuild`, so that they
all rank from the same events: the latest STREAMREC_HISTORY_LENGTH events of the history
(what the model reads, and what a precomputed list records as its basis) and the
interacted-items set (every item the subject interacted with, up to
STREAMREC_INTERACTED_ITEMS_MAX), which seen-item exclusion and `Interactions` filters use.
Both are written by the ingest script (apply_batch.lua); their layout is in
docs/redis-keys.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from connector.keys import Keys, Subject
from connector.model.history import (
    HistoryEntry,
    Interacted,
    history_digest,
    parse_member,
    parse_pairs,
)
from connector.redis_client import RedisClient

COMMANDS = 2  # pipeline replies one subject's read takes


class SubjectHistory:
    """A subject's events as ranking needs them. The interacted items are kept as read and
    turned into ids or (item, event type) pairs only when asked for, once: a heavy user's
    set holds thousands, and most reads only need the ids (docs/performance-log.md, Load and
    soak)."""

    def __init__(
        self, members: list[bytes], events: list[HistoryEntry], pairs: list[list[Any]]
    ) -> None:
        self.members = members  # the latest history members as stored, oldest first
        self.events = events  # the same, parsed: what the model reads
        self._pairs = pairs  # [item, event type] of every remembered interaction

    @property
    def basis(self) -> str:
        """The digest a precomputed list made from these events records."""
        return history_digest(self.members)

    @cached_property
    def interacted_items(self) -> list[str]:
        """The items interacted with, each once: the set's and the history's own (a subject
        recorded before the set existed, or whose set expired first, still has its recent
        items excluded)."""
        items = [pair[0] for pair in self._pairs]
        items += [event.item for event in self.events]
        return list(dict.fromkeys(items))

    @cached_property
    def interacted(self) -> list[Interacted]:
        """Every remembered (item, event type), the history's own included."""
        pairs = [Interacted(str(item), kind) for item, kind in self._pairs]
        pairs += [Interacted(event.item, event.event_type) for event in self.events]
        return list(dict.fromkeys(pairs))


EMPTY = SubjectHistory([], [], [])


class HistoryReader:
    """Reads subjects' histories from Redis, alone or inside a caller's pipeline."""

    def __init__(self, client: RedisClient, keys: Keys, length: int) -> None:
        self._client, self._keys, self._length = client, keys, length

    @property
    def length(self) -> int:
        """How many of the latest events are read."""
        return self._length

    def read(self, subjects: Sequence[Subject]) -> list[SubjectHistory]:
        """Each subject's history, in one round trip."""
        if not subjects:
            return []
        pipe = self._client.pipeline(transaction=False)
        for subject in subjects:
            self.queue(pipe, subject)
        replies = pipe.execute()
        return [
            self.parse(replies[n * COMMANDS : (n + 1) * COMMANDS]) for n in range(len(subjects))
        ]

    def queue(self, pipe: Any, subject: Subject) -> None:
        """Add the reads of one subject (COMMANDS replies) to `pipe`."""
        pipe.zrange(self._keys.history(subject), -self._length, -1)
        pipe.zrange(self._keys.interacted(subject), 0, -1)

    def parse(self, replies: Sequence[Any]) -> SubjectHistory:
        """The SubjectHistory of one subject's COMMANDS replies."""
        members = list(replies[0])
        events = [parse_member(member) for member in members]
        return SubjectHistory(members, events, parse_pairs(replies[1]))
