"""Lists served under a recommendationId, from which implicit impressions are derived.

The serving side stores every list it returns under its recommendationId (with a TTL); the
connector only reads them. Both sides go through this module, so the format has one owner.
What is stored is bounded per request and per subject, since any caller of the API makes it
grow: the first SERVED_ITEMS_KEPT ids (an impression holds at most 25 items in
Personalize), as a compact JSON array `[source, id, ...]`, and only the newest
`per_subject` lists of each user or session (older ones are deleted as new ones come).
"""

from __future__ import annotations

from typing import Protocol

import orjson

from connector.keys import Keys, Subject
from connector.records import ServedList
from connector.redis_client import RedisClient, mget

SERVED_ITEMS_KEPT = 25  # Personalize's most items in one impression


class ServedLists(Protocol):
    """Where the connector looks up what was shown under a recommendationId."""

    def get_many(self, recommendation_ids: set[str]) -> dict[str, ServedList]:
        """The served lists that are known, by recommendationId."""
        ...


class RedisServedLists:
    """Served lists in Redis, one string key per recommendationId."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def put(
        self,
        recommendation_id: str,
        served: ServedList,
        ttl_seconds: int,
        owner: Subject | None = None,
        per_subject: int = 0,
    ) -> None:
        """Store the list served under `recommendation_id` for `ttl_seconds`; with an
        `owner`, keep only that subject's newest `per_subject` lists."""
        value = orjson.dumps([served.source, *served.items[:SERVED_ITEMS_KEPT]])
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._keys.served(recommendation_id), value, ex=ttl_seconds)
        if owner is not None and per_subject > 0:
            recent = self._keys.served_by(owner)
            pipe.lpush(recent, recommendation_id)
            pipe.lrange(recent, per_subject, -1)  # pushed out of the newest per_subject
            pipe.ltrim(recent, 0, per_subject - 1)
            pipe.expire(recent, ttl_seconds)
        replies = pipe.execute()
        evicted = [_text(rid) for rid in replies[2]] if len(replies) > 2 else []
        if evicted:
            self._client.delete(*(self._keys.served(rid) for rid in evicted))

    def get_many(self, recommendation_ids: set[str]) -> dict[str, ServedList]:
        """The served lists that are known, by recommendationId (one MGET)."""
        ordered = sorted(recommendation_ids)
        if not ordered:
            return {}
        values = mget(self._client, [self._keys.served(rid) for rid in ordered])
        return {
            rid: _parse(value)
            for rid, value in zip(ordered, values, strict=True)
            if value is not None
        }


def _parse(value: bytes | str) -> ServedList:
    """A stored served list: `[source, id, ...]`, or the `{"items", "source"}` object
    written before lists were bounded (read until their TTL ends)."""
    decoded = orjson.loads(value)
    if isinstance(decoded, dict):
        return ServedList(list(decoded["items"]), str(decoded["source"]))
    return ServedList([str(item) for item in decoded[1:]], str(decoded[0]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
