"""The one way streamrec opens Redis: from settings, checked with PING at start-up.

`STREAMREC_REDIS_URL` names a single server (`redis://`, `rediss://`) or a Redis Cluster
(`redis+cluster://`, `rediss+cluster://`, any one node as the seed). Code that writes keys of
many subjects in one call asks `is_cluster` and splits its work by node (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from connector.exceptions import ConfigurationError, RedisUnavailableError
from connector.settings import CommonSettings

RedisClient: TypeAlias = redis.Redis | RedisCluster
"""A client of either kind; both take the same commands for keys of one hash slot."""

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# What a client raises when Redis fails it: redis-py's errors, and a cluster client's own,
# which do not derive from them.
REDIS_FAILURES: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


def connect(settings: CommonSettings) -> RedisClient:
    """A client for the settings' Redis (URL, ACL user, password, TLS CA), known to answer.

    Failing here, at start-up, with the reason beats failing on the first event.
    """
    try:
        client = open_url(settings.redis_url, **settings.redis_options())
        client.ping()
    except redis.AuthenticationError as exc:
        raise RedisUnavailableError(
            f"Redis at {_safe(settings.redis_url)} refused the credentials: {exc}; check "
            "STREAMREC_REDIS_USERNAME and STREAMREC_REDIS_PASSWORD"
        ) from exc
    except REDIS_FAILURES as exc:
        raise RedisUnavailableError(
            f"Redis at {_safe(settings.redis_url)} does not answer: {exc}"
        ) from exc
    return client


def open_url(url: str, **options: Any) -> RedisClient:
    """A client of `url` without any check: a cluster client for a `+cluster` scheme."""
    scheme, sep, rest = url.partition("://")
    if scheme not in CLUSTER_SCHEMES:
        return redis.Redis.from_url(url, **options)
    host_port = rest.rpartition("@")[2].split("/", 1)
    if len(host_port) > 1 and host_port[1] not in ("", "0"):
        raise ConfigurationError(
            f"a Redis Cluster has only database 0, not {host_port[1]!r} in {_safe(url)}"
        )
    try:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}{sep}{rest}", **options)
    except redis.AuthenticationError:
        raise  # connect() says which settings to check
    except REDIS_FAILURES as exc:
        if _refused_credentials(exc):
            raise redis.AuthenticationError(str(exc)) from exc  # no node took them
        raise RedisUnavailableError(
            f"Redis Cluster at {_safe(url)} does not answer: {exc}"
        ) from exc


def _refused_credentials(exc: BaseException) -> bool:
    """Whether a cluster client failed to start because its nodes refused the credentials
    (redis-py wraps the AuthenticationError, sometimes only in the message)."""
    if isinstance(exc.__cause__, redis.AuthenticationError):
        return True
    text = str(exc)
    return any(sign in text for sign in ("username-password", "WRONGPASS", "NOAUTH"))


def is_cluster(client: RedisClient) -> bool:
    """Whether `client` talks to a Redis Cluster (keys of different slots on different nodes)."""
    return isinstance(client, RedisCluster)


def run_pipeline(client: RedisClient, fill: Callable[[Any], None], *scripts: str) -> list[Any]:
    """A non-transactional pipeline filled by `fill` and run. A cluster pipeline, unlike a
    single server's, does not load the scripts it calls, and a node that failed over has
    lost them: on NOSCRIPT the `scripts` are loaded on every primary and the pipeline runs
    once more, so its commands must be safe to run twice."""
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        fill(pipe)
        try:
            return list(pipe.execute())
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            for text in scripts:
                client.script_load(text)
    raise AssertionError("unreachable")


def mget(client: RedisClient, names: Sequence[str]) -> list[Any]:
    """The values of `names`, in order (None where missing): one MGET on a single server, one
    per slot on a cluster (where a MGET may only name keys of one slot)."""
    if not names:
        return []
    if isinstance(client, RedisCluster):
        return list(client.mget_nonatomic(list(names)))
    return list(client.mget(list(names)))


def _safe(url: str) -> str:
    """The URL without any password it carries, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"
