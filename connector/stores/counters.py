"""Reading the event-type and attribution-source counters the ingest script keeps."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from connector.keys import Keys


@dataclass(frozen=True)
class BucketCounts:
    """Counts of one time bucket (event time, `bucket` = its start in epoch seconds)."""

    bucket: int
    by_type: dict[str, int]
    by_source: dict[str, int]


def recent_buckets(client: redis.Redis, keys: Keys, last: int) -> list[BucketCounts]:
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
