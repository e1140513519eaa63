"""Reading the event-type and attribution-source counters the ingest script keeps, and
moving counters of the key layout version 1 to where version 2 keeps them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.keys import Keys
from connector.redis_client import RedisClient

_log = logging.getLogger(__name__)

# Layout version 1 kept the counters under `metrics:types:<bucket>` (and sources, buckets),
# each key in a slot of its own; version 2 gives them one hash tag (docs/redis-keys.md). One
# script adds each old hash into the new one and deletes it, so a crash or a second
# connector starting at the same time never counts a bucket twice.
_MIGRATE = """
local buckets = redis.call('ZRANGE', ARGV[3], 0, -1, 'WITHSCORES')
for i = 1, #buckets, 2 do
  local bucket = buckets[i]
  for _, names in ipairs({{ARGV[1], ARGV[4]}, {ARGV[2], ARGV[5]}}) do
    local old, new = names[1] .. bucket, names[2] .. bucket
    local fields = redis.call('HGETALL', old)
    for j = 1, #fields, 2 do
      redis.call('HINCRBY', new, fields[j], fields[j + 1])
    end
    local ttl = redis.call('PTTL', old)
    if ttl > 0 and redis.call('PTTL', new) < ttl then redis.call('PEXPIRE', new, ttl) end
    redis.call('DEL', old)
  end
  redis.call('ZADD', ARGV[6], buckets[i + 1], bucket)
end
redis.call('DEL', ARGV[3])
return #buckets / 2
"""


@dataclass(frozen=True)
class BucketCounts:
    """Counts of one time bucket (event time, `bucket` = its start in epoch seconds)."""

    bucket: int
    by_type: dict[str, int]
    by_source: dict[str, int]


def recent_buckets(client: RedisClient, keys: Keys, last: int) -> list[BucketCounts]:
    """The `last` most recent buckets that have counts, oldest first (one pipeline)."""
    members: list[bytes] = client.zrange(keys.metric_buckets, -last, -1)  # type: ignore[assignment]
    buckets = [int(member) for member in members]
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hgetall(keys.type_counts(bucket))
        pipe.hgetall(keys.source_counts(bucket))
    replies = pipe.execute()
    return [
        BucketCounts(bucket, _counts(replies[2 * n]), _counts(replies[2 * n + 1]))
        for n, bucket in enumerate(buckets)
    ]


def _counts(reply: dict[bytes, bytes]) -> dict[str, int]:
    return {name.decode(): int(count) for name, count in sorted(reply.items())}


def migrate_legacy_counters(client: RedisClient, keys: Keys) -> int:
    """Move layout version 1's counters of the group to version 2's keys on a single server
    (a cluster never held version 1: streamrec refused clusters then); the buckets moved."""
    old_types, old_sources, old_buckets = keys.legacy_metrics()
    if not client.exists(old_buckets):
        return 0
    new_types, new_sources = keys.type_counts(0)[:-1], keys.source_counts(0)[:-1]
    args = [old_types, old_sources, old_buckets, new_types, new_sources, keys.metric_buckets]
    moved = int(client.eval(_MIGRATE, 0, *args))
    _log.info("counters moved to key layout version 2", extra={"buckets": moved})
    return moved
