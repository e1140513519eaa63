"""Precomputed recommendation lists in Redis: one key per user or anonymous session.

The list is one JSON string so a client reads it with a single GET (sub-millisecond) and
needs nothing but a JSON parser; docs/redis-keys.md documents it as a public contract. The
key shares the subject's hash tag, so it lives in the same Redis Cluster slot as that
subject's history.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connector.keys import Keys, Subject
from connector.redis_client import RedisClient

EXPLORED = ["Exploration"]  # an item's reason when exploration placed it, as the API gives it
_REASON = b',"reason":' + orjson.dumps(EXPLORED)


@dataclass(frozen=True)
class ListTerms:
    """What a list was made under besides the model version: the history it was computed
    from (history_digest of the members read), the named filter it went through, and the
    exploration settings. The API serves a list as its answer only when all of them match
    what it would use itself."""

    basis: str
    filter: str | None
    exploration_weight: float
    exploration_item_age_cut_off: float


@dataclass(frozen=True)
class StoredList:
    """A precomputed list as stored: which model made it, when, the ranked items, which
    positions exploration placed, and the terms it was made under (None in lists written
    before terms were recorded)."""

    version: str
    updated_ms: int
    items: list[tuple[str, float]]
    explored: frozenset[int] = frozenset()
    terms: ListTerms | None = None

    def to_json(self) -> bytes:
        """The stored form: {"version", "updated", "basis", "filter", "explorationWeight",
        "explorationItemAgeCutOff", "itemList": [{"itemId", "score"[, "reason"]}]}."""
        document = _header(self.version, self.updated_ms, self.terms)
        entries = [{"itemId": item, "score": score} for item, score in self.items]
        for position in self.explored:  # a few; asking every entry cost a third of this
            entries[position]["reason"] = EXPLORED
        document["itemList"] = entries
        return orjson.dumps(document)

    @classmethod
    def from_json(cls, raw: bytes | str) -> StoredList:
        """Parse the stored form."""
        value = orjson.loads(raw)
        entries = value["itemList"]
        items = [(entry["itemId"], float(entry["score"])) for entry in entries]
        explored = frozenset(n for n, entry in enumerate(entries) if "reason" in entry)
        terms = None
        if "basis" in value:
            terms = ListTerms(
                str(value["basis"]),
                value.get("filter"),
                float(value["explorationWeight"]),
                float(value["explorationItemAgeCutOff"]),
            )
        return cls(str(value["version"]), int(value["updated"]), items, explored, terms)


class ListEncoder:
    """StoredList's JSON form written straight from a ranking (model columns and scores),
    byte for byte what `StoredList.to_json` writes, for the connector's refresh.

    Building the (item, score) pairs and one dict per entry for orjson was about a fifth of
    a list refresh at 100,000 items (docs/performance-log.md, List refresh); here each
    item's `{"itemId":..., "score":` is encoded once per model version and an entry is that
    fragment plus the score's text, joined in C."""

    def __init__(self, item_ids: Sequence[str]) -> None:
        self._fragments = [b'{"itemId":' + orjson.dumps(item) + b',"score":' for item in item_ids]

    def encode(
        self,
        version: str,
        updated_ms: int,
        terms: ListTerms | None,
        columns: list[int],
        scores: list[float],
        explored: Iterable[int],
    ) -> bytes:
        """The stored form of a list of the items at `columns` with `scores` (rounded as
        they should be stored), exploration having placed the positions `explored`."""
        head = orjson.dumps(_header(version, updated_ms, terms))
        if not columns:
            return head[:-1] + b',"itemList":[]}'
        entries = list(
            map(
                bytes.__add__,
                map(self._fragments.__getitem__, columns),
                orjson.dumps(scores)[1:-1].split(b","),
            )
        )
        for position in explored:
            entries[position] += _REASON
        return head[:-1] + b',"itemList":[' + b"},".join(entries) + b"}]}"


def _header(version: str, updated_ms: int, terms: ListTerms | None) -> dict[str, Any]:
    """The stored form's fields before its itemList."""
    document: dict[str, Any] = {"version": version, "updated": updated_ms}
    if terms is not None:
        document.update(
            basis=terms.basis,
            filter=terms.filter,
            explorationWeight=terms.exploration_weight,
            explorationItemAgeCutOff=terms.exploration_item_age_cut_off,
        )
    return document


class RecommendationLists:
    """Reads and writes the precomputed lists of one dataset group."""

    def __init__(self, client: RedisClient, keys: Keys, ttl_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl = ttl_seconds

    def write(self, lists: Sequence[tuple[Subject, StoredList | bytes]]) -> None:
        """Write every list (or its stored form, from ListEncoder) in one pipeline, and
        mark the subjects as recently active."""
        if not lists:
            return
        pipe = self._client.pipeline(transaction=False)
        for subject, stored in lists:
            raw = stored.to_json() if isinstance(stored, StoredList) else stored
            pipe.set(self._keys.recommendations(subject), raw, ex=self._ttl)
        self._queue_active(pipe, [subject for subject, _ in lists])
        pipe.execute()

    def mark_active(self, subjects: Sequence[Subject]) -> None:
        """Count `subjects` as recently active without writing their lists (events recorded
        before any model version exists), so the first version gives them lists."""
        if not subjects:
            return
        pipe = self._client.pipeline(transaction=False)
        self._queue_active(pipe, subjects)
        pipe.execute()

    def _queue_active(self, pipe: Any, subjects: Sequence[Subject]) -> None:
        """Add to `pipe`: `subjects` active now, and the active set rid of subjects idle for
        longer than a list lives."""
        now_ms = int(time.time() * 1000)
        pipe.zadd(self._keys.active_subjects, {subject.tag: now_ms for subject in subjects})
        pipe.zremrangebyscore(self._keys.active_subjects, "-inf", now_ms - self._ttl * 1000)

    def read(self, subject: Subject) -> StoredList | None:
        """The subject's list, or None when it has none."""
        raw = self._client.get(self._keys.recommendations(subject))
        return StoredList.from_json(raw) if raw is not None else None

    def active(self, limit: int | None = None) -> list[str]:
        """The tags of the `limit` (default all) most recently active subjects, most recent
        first."""
        if limit is not None and limit <= 0:
            return []
        tags = self._client.zrevrange(
            self._keys.active_subjects, 0, -1 if limit is None else limit - 1
        )
        return [tag.decode() if isinstance(tag, bytes) else str(tag) for tag in tags]
