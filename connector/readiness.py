"""When a connector replica is ready: its consumer group gave it partitions and Redis answers.

Kubernetes and docker compose ask `/readyz` to decide whether a replica counts as available
(a rolling update waits for it before stopping the next old one). Liveness (`/healthz`) only
says the event loop answers; readiness also says the replica can do its work. A replica
that the group left without partitions (more replicas than partitions) is ready and idle: it
takes partitions over when another member leaves, and keeping it unready would only stall
rollouts.

The rebalance state is fed by faust's `on_partitions_revoked` / `on_partitions_assigned`
signals; Redis is checked with PING on each probe, on a client of its own with a short
timeout so a probe never waits behind a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connector.exceptions import RedisUnavailableError
from connector.redis_client import REDIS_FAILURES, RedisClient, open_url

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Verdict:
    """A readiness answer: the HTTP status and the JSON document that explains it."""

    status: int
    body: dict[str, Any]


class Readiness:
    """Tracks this replica's partition assignment and checks Redis on demand."""

    def __init__(self, topics: Iterable[str], ping: Callable[[], object]) -> None:
        self._topics = frozenset(topics)
        self._ping = ping
        self._assigned: tuple[tuple[str, int], ...] | None = None

    def revoked(self) -> None:
        """A rebalance started: this replica's partitions are in flux until it ends."""
        self._assigned = None

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A rebalance ended; keep the partitions of our input topics (not faust's own)."""
        self._assigned = tuple(sorted(tp for tp in partitions if tp[0] in self._topics))

    async def check(self) -> Verdict:
        """200 when partitions are assigned and Redis answers PING; 503 with the reason."""
        if self._assigned is None:
            return _unready("waiting for the consumer group to assign partitions")
        try:
            await asyncio.wait_for(asyncio.to_thread(self._ping), PROBE_TIMEOUT_SECONDS)
        except REDIS_DOWN as exc:
            return _unready(f"Redis does not answer: {exc or type(exc).__name__}")
        body: dict[str, Any] = {"status": "ready", "partitions": len(self._assigned)}
        if not self._assigned:
            body["message"] = "no partitions assigned: more replicas than partitions"
        return Verdict(200, body)


# What a probe raises when Redis, or a cluster's node, does not answer in time.
REDIS_DOWN: tuple[type[Exception], ...] = (
    *REDIS_FAILURES,
    RedisUnavailableError,
    OSError,
    TimeoutError,
)


def _unready(reason: str) -> Verdict:
    return Verdict(503, {"status": "not ready", "reason": reason})


def redis_ping(url: str, options: dict[str, Any]) -> Callable[[], object]:
    """PING on a client of its own whose calls give up after PROBE_TIMEOUT_SECONDS, opened
    on the first probe (a cluster client connects when it is made, and a Redis down at start
    must make the probe fail, not the process)."""
    short = {
        **options,
        "socket_timeout": PROBE_TIMEOUT_SECONDS,
        "socket_connect_timeout": PROBE_TIMEOUT_SECONDS,
    }
    opened: list[RedisClient] = []

    def ping() -> object:
        if not opened:
            opened.append(open_url(url, **short))
        return opened[0].ping()

    return ping
