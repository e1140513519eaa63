"""Session histories, dedup markers, stitching and counters in Redis.

A batch costs three round trips: which sessions are stitched (MGET), which events are
already recorded (one script), and all writes (one script), so the writes of a batch happen
together or not at all. Every write is keyed by the event's markers, so a batch replayed
after a crash changes nothing. Key names come from `connector.keys`; the scripts receive the
group prefix and the suffixes and put them together with each subject's hash tag. On a Redis
Cluster the same scripts run per node (connector/stores/cluster_apply.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from connector.keys import Keys, Subject
from connector.records import AcceptedEvent, Stitch
from connector.redis_client import RedisClient, is_cluster, mget
from connector.stores.cluster_apply import ClusterApply
from connector.stores.counters import migrate_legacy_counters
from connector.stores.script_args import event_op, packed_ops, packed_probes

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
    interacted_max: int = 10_000
    interacted_ttl_seconds: int = 365 * 24 * 3600
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

    def __init__(self, client: RedisClient, keys: Keys, policy: HistoryPolicy) -> None:
        self._client = client
        self._keys = keys
        self._policy = policy
        scripts = {
            "apply": _script("apply_batch.lua"),
            "known": _script("known_markers.lua"),
            "count": _script("count_batch.lua"),
        }
        self._apply = client.register_script(scripts["apply"])
        self._known = client.register_script(scripts["known"])
        self._admit_types = client.register_script(_ADMIT_TYPES)
        self._layout = _layout(keys)
        self._base = self._settings()
        self._layout_json = orjson.dumps(self._layout)
        self._cluster: ClusterApply | None = None
        if is_cluster(client):
            counting = {
                key: self._base[key]
                for key in ("type_prefix", "source_prefix", "buckets_key", "metrics_ttl")
            }
            self._cluster = ClusterApply(client, keys, scripts, counting, self._admit)  # type: ignore[arg-type]
        else:
            migrate_legacy_counters(client, keys)

    @property
    def policy(self) -> HistoryPolicy:
        """The bounds the apply script trims to."""
        return self._policy

    def links(self, sessions: set[str]) -> dict[str, str]:
        """Anonymous sessions already stitched to a user, and that user."""
        ordered = sorted(sessions)
        values = mget(self._client, [self._keys.session_user(s) for s in ordered])
        return {s: _text(v) for s, v in zip(ordered, values, strict=True) if v is not None}

    def known(self, probes: list[tuple[str, tuple[str, ...]]]) -> list[bool]:
        """For each (subject hash tag, markers), whether one of the markers is already
        recorded for that subject (a duplicate)."""
        if not probes:
            return []
        if self._cluster is not None:
            return [flag == "1" for flag in self._cluster.known(self._layout_json, probes)]
        flags = self._known(args=[self._layout_json, packed_probes(probes)])
        return [flag == "1" for flag in _text(flags)]

    def admit_event_types(self, types: set[str], budget: int) -> set[str]:
        """The subset of `types` within the distinct-event-type budget (atomic across
        connector replicas: the set only grows while it is under the budget)."""
        return self._admit(self._keys.event_types, sorted(types), budget)

    def _admit(self, key: str, names: list[str], budget: int) -> set[str]:
        """The subset of `names` within the set `key`'s budget, which it joins if new."""
        if not names:
            return set()
        admitted = self._admit_types(keys=[key], args=[budget, *names])
        return {_text(name) for name in admitted}

    def apply(self, events: list[AcceptedEvent], stitches: list[Stitch]) -> ApplyReport:
        """Record the events, then the stitches, of one batch atomically. Stitches come
        last: a session's events of this batch from before the login are in its history by
        then, and move with it."""
        if not events and not stitches:
            return ApplyReport(0, 0, 0, [])
        base = {**self._base, "newest": max((e.row["TIMESTAMP"] for e in events), default=0)}
        ops = [event_op(event, self._policy.bucket_seconds) for event in events]
        if self._cluster is not None:
            admitted, duplicates, stitched, flags = self._cluster.apply(
                base, ops, stitches, MAX_ATTRIBUTION_SOURCES
            )
        else:
            header = orjson.dumps({**base, "stitches": [_stitch(s) for s in stitches]})
            reply = self._apply(args=[header, packed_ops(ops)])
            admitted, duplicates, stitched, flags, _ = reply
        applied = [event for event, flag in zip(events, _text(flags), strict=True) if flag == "1"]
        return ApplyReport(int(admitted), int(duplicates), int(stitched), applied)

    def _settings(self) -> dict[str, Any]:
        """The part of every apply payload that is the same for each batch."""
        policy, keys = self._policy, self._keys
        return {
            **self._layout,
            "history_length": policy.length,
            "history_ttl": policy.ttl_seconds,
            "interacted_max": policy.interacted_max,
            "interacted_ttl": policy.interacted_ttl_seconds,
            "dedup_window": policy.dedup_window_seconds,
            "dedup_max_markers": policy.dedup_max_markers,
            "metrics_ttl": policy.metrics_ttl_seconds,
            "max_sources": MAX_ATTRIBUTION_SOURCES,
            "sources_key": keys.sources,
            "type_prefix": keys.type_counts(0)[:-1],
            "source_prefix": keys.source_counts(0)[:-1],
            "buckets_key": keys.metric_buckets,
        }


def _stitch(stitch: Stitch) -> dict[str, str]:
    return {
        "user": stitch.user_id,
        "user_tag": Subject("u", stitch.user_id).tag,
        "session_tag": Subject("s", stitch.session_id).tag,
    }


def _layout(keys: Keys) -> dict[str, str]:
    """The parts the scripts build a subject's keys from: prefix + hash tag + suffix."""
    probe = Subject("u", "x")
    start = len(keys.base) + len(probe.tag)
    return {
        "prefix": keys.base,
        "history_suffix": keys.history(probe)[start:],
        "seen_suffix": keys.seen(probe)[start:],
        "interacted_suffix": keys.interacted(probe)[start:],
        "user_suffix": keys.session_user("x")[start:],
    }


# Scripts that take a shared Lua file in front of their own text.
_PRELUDES = {
    "apply_batch.lua": ("counters.lua", "markers.lua"),
    "count_batch.lua": ("counters.lua",),
    "known_markers.lua": ("markers.lua",),
}


def _script(name: str) -> str:
    """A script's Lua text, with the shared functions it uses in front."""
    files = resources.files(__package__)
    preludes = [files.joinpath(prelude).read_text() for prelude in _PRELUDES.get(name, ())]
    return "".join(preludes) + files.joinpath(name).read_text()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
