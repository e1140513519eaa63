"""Lists served under a recommendationId, from which implicit impressions are derived.

The serving side stores every list it returns under its recommendationId (with a TTL); the
connector only reads them. Both sides go through this module, so the format has one owner.
"""

from __future__ import annotations

import json
from typing import Protocol

import redis

from connector.ingest.records import ServedList
from connector.keys import Keys


class ServedLists(Protocol):
    """Where the connector looks up what was shown under a recommendationId."""

    def get_many(self, recommendation_ids: set[str]) -> dict[str, ServedList]:
        """The served lists that are known, by recommendationId."""
        ...


class RedisServedLists:
    """Served lists in Redis, one string key per recommendationId."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def put(self, recommendation_id: str, served: ServedList, ttl_seconds: int) -> None:
        """Store the list served under `recommendation_id` for `ttl_seconds`."""
        value = json.dumps({"items": served.items, "source": served.source})
        self._client.set(self._keys.served(recommendation_id), value, ex=ttl_seconds)

    def get_many(self, recommendation_ids: set[str]) -> dict[str, ServedList]:
        """The served lists that are known, by recommendationId (one MGET)."""
        ordered = sorted(recommendation_ids)
        if not ordered:
            return {}
        values = self._client.mget([self._keys.served(rid) for rid in ordered])
        found = {}
        for rid, value in zip(ordered, values, strict=True):
            if value is not None:
                decoded = json.loads(value)
                found[rid] = ServedList(list(decoded["items"]), str(decoded["source"]))
        return found
