"""Precomputed recommendation lists in Redis: one key per user or anonymous session.

The list is one JSON string so a client reads it with a single GET (sub-millisecond) and
needs nothing but a JSON parser; docs/redis-keys.md documents it as a public contract. The
key shares the subject's hash tag, so it lives in the same Redis Cluster slot as that
subject's history.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis

from connector.keys import Keys, Subject


@dataclass(frozen=True)
class StoredList:
    """A precomputed list as stored: which model made it, when, and the ranked items."""

    version: str
    updated_ms: int
    items: list[tuple[str, float]]

    def to_json(self) -> bytes:
        """The stored form: {"version", "updated", "itemList": [{"itemId", "score"}]}."""
        return orjson.dumps(
            {
                "version": self.version,
                "updated": self.updated_ms,
                "itemList": [{"itemId": item, "score": score} for item, score in self.items],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> StoredList:
        """Parse the stored form."""
        value = orjson.loads(raw)
        items = [(entry["itemId"], float(entry["score"])) for entry in value["itemList"]]
        return cls(str(value["version"]), int(value["updated"]), items)


class RecommendationLists:
    """Reads and writes the precomputed lists of one dataset group."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl = ttl_seconds

    def write(self, lists: Sequence[tuple[Subject, StoredList]]) -> None:
        """Write every list in one pipeline, and mark the subjects as recently active."""
        if not lists:
            return
        now_ms = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        for subject, stored in lists:
            pipe.set(self._keys.recommendations(subject), stored.to_json(), ex=self._ttl)
        pipe.zadd(self._keys.active_subjects, {subject.tag: now_ms for subject, _ in lists})
        pipe.zremrangebyscore(self._keys.active_subjects, "-inf", now_ms - self._ttl * 1000)
        pipe.execute()

    def read(self, subject: Subject) -> StoredList | None:
        """The subject's list, or None when it has none."""
        raw = self._client.get(self._keys.recommendations(subject))
        return StoredList.from_json(raw) if raw is not None else None

    def active(self) -> list[str]:
        """Every active subject's tag, most recently refreshed first."""
        tags = self._client.zrevrange(self._keys.active_subjects, 0, -1)
        return [tag.decode() if isinstance(tag, bytes) else str(tag) for tag in tags]
