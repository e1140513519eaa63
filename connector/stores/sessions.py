"""Session histories, dedup markers, stitching and counters in Redis.

Reads (which markers are known, which sessions are stitched) are one pipeline per batch;
all writes of a batch are one Lua script, so they happen together or not at all, and every
write is keyed by the event's markers, so a batch replayed after a crash changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from connector.ingest.records import AcceptedEvent, Stitch
from connector.keys import Keys, Subject

MAX_ATTRIBUTION_SOURCES = 100  # as in Personalize
_ADMIT_TYPES = """
local added = {}
for i, name in ipairs(ARGV) do
  if i > 1 then
    if redis.call('SISMEMBER', KEYS[1], name) == 1 then
      table.insert(added, name)
    elseif redis.call('SCARD', KEYS[1]) < tonumber(ARGV[1]) then
      redis.call('SADD', KEYS[1], name)
      table.insert(added, name)
    end
  end
end
return added
"""


@dataclass(frozen=True)
class HistoryPolicy:
    """How much history and how many dedup markers are kept, and for how long."""

    length: int
    ttl_seconds: int
    dedup_window_seconds: int
    dedup_max_markers: int
    bucket_seconds: int
    metrics_ttl_seconds: int = 35 * 24 * 3600


@dataclass(frozen=True)
class ApplyReport:
    """What one batch changed in Redis; `applied` holds the events recorded by this call."""

    admitted: int
    duplicates: int
    stitched: int
    applied: list[AcceptedEvent]


class SessionStore:
    """The ingest path's Redis state of one dataset group."""

    def __init__(self, client: redis.Redis, keys: Keys, policy: HistoryPolicy) -> None:
        self._client = client
        self._keys = keys
        self._policy = policy
        script = resources.files(__package__).joinpath("apply_batch.lua").read_text()
        self._apply = client.register_script(script)
        self._admit_types = client.register_script(_ADMIT_TYPES)

    def links(self, sessions: set[str]) -> dict[str, str]:
        """Anonymous sessions already stitched to a user, and that user."""
        ordered = sorted(sessions)
        values = self._client.mget([self._keys.session_user(s) for s in ordered]) if ordered else []
        return {s: _text(v) for s, v in zip(ordered, values, strict=True) if v is not None}

    def known(self, events: list[AcceptedEvent]) -> list[bool]:
        """For each event, whether one of its markers is already recorded (a duplicate)."""
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            pipe.zmscore(self._keys.seen(event.subject), list(event.markers))
        return [any(score is not None for score in scores) for scores in pipe.execute()]

    def admit_event_types(self, types: set[str], budget: int) -> set[str]:
        """The subset of `types` within the distinct-event-type budget (atomic across
        connector replicas: the set only grows while it is under the budget)."""
        if not types:
            return set()
        admitted = self._admit_types(keys=[self._keys.event_types], args=[budget, *sorted(types)])
        return {_text(name) for name in admitted}

    def apply(self, events: list[AcceptedEvent], stitches: list[Stitch]) -> ApplyReport:
        """Record the events and stitches of one batch atomically."""
        payload = self._payload(events, stitches)
        admitted, duplicates, stitched, flags = self._apply(args=[json.dumps(payload)])
        applied = [event for event, flag in zip(events, _text(flags), strict=True) if flag == "1"]
        return ApplyReport(int(admitted), int(duplicates), int(stitched), applied)

    def _payload(self, events: list[AcceptedEvent], stitches: list[Stitch]) -> dict[str, Any]:
        policy, keys = self._policy, self._keys
        return {
            "history_length": policy.length,
            "history_ttl": policy.ttl_seconds,
            "dedup_window": policy.dedup_window_seconds,
            "dedup_max_markers": policy.dedup_max_markers,
            "metrics_ttl": policy.metrics_ttl_seconds,
            "max_sources": MAX_ATTRIBUTION_SOURCES,
            "sources_key": keys.sources,
            "type_prefix": keys.type_counts(0)[:-1],
            "source_prefix": keys.source_counts(0)[:-1],
            "buckets_key": keys.metric_buckets,
            "ops": self._ops(events, stitches),
        }

    def _ops(self, events: list[AcceptedEvent], stitches: list[Stitch]) -> list[dict[str, Any]]:
        """Events first, then stitches: a session's events of this batch that came before
        the login are in its history by then, and are merged with it."""
        newest = max((event.row["TIMESTAMP"] for event in events), default=0)
        return [self._event_op(event) for event in events] + [
            self._stitch_op(stitch, newest) for stitch in stitches
        ]

    def _event_op(self, event: AcceptedEvent) -> dict[str, Any]:
        timestamp = event.row["TIMESTAMP"]
        return {
            "kind": "event",
            "history": self._keys.history(event.subject),
            "seen": self._keys.seen(event.subject),
            "markers": list(event.markers),
            "ts": timestamp,
            "member": event.history_member,
            "type": event.event_type,
            "source": event.attribution,
            "bucket": timestamp - timestamp % self._policy.bucket_seconds,
        }

    def _stitch_op(self, stitch: Stitch, newest: int) -> dict[str, Any]:
        user, session = Subject("u", stitch.user_id), Subject("s", stitch.session_id)
        return {
            "kind": "stitch",
            "link": self._keys.session_user(stitch.session_id),
            "user": stitch.user_id,
            "user_history": self._keys.history(user),
            "user_seen": self._keys.seen(user),
            "session_history": self._keys.history(session),
            "session_seen": self._keys.seen(session),
            "newest": newest,
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
