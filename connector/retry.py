"""The one retry policy: which errors are worth retrying, and how long to wait between tries.

`TRANSIENT` is every fault that passes on its own (a broker, Redis or the list refresh process
away for a while): streamrec's `TransientError`, redis-py's connection and timeout errors,
and a Redis Cluster's failover errors.
`Backoff` (connector/backoff.py, apart so that Kafka-only code such as the producer does not
load redis-py) gives the waits. Callers wait in their own way (asyncio, a thread's stop
event, time.sleep) and iterate `Backoff.delays()` for how long.
"""

from __future__ import annotations

import redis

from connector.backoff import Backoff
from connector.exceptions import TransientError

__all__ = ["TRANSIENT", "Backoff"]

TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    redis.ConnectionError,
    redis.TimeoutError,
    # A Redis Cluster failing over or resharding: the client finds the new owner by itself.
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterUnreachableError,
)
