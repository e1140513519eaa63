"""The one way streamrec opens Redis: from settings, checked with PING at start-up."""

from __future__ import annotations

import redis

from connector.exceptions import RedisUnavailableError
from connector.settings import CommonSettings


def connect(settings: CommonSettings) -> redis.Redis:
    """A client for the settings' Redis (URL, ACL user, password, TLS CA), known to answer.

    Failing here, at start-up, with the reason beats failing on the first event.
    """
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_options())
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise RedisUnavailableError(
            f"Redis at {_safe(settings.redis_url)} refused the credentials: {exc}; check "
            "STREAMREC_REDIS_USERNAME and STREAMREC_REDIS_PASSWORD"
        ) from exc
    except redis.RedisError as exc:
        raise RedisUnavailableError(
            f"Redis at {_safe(settings.redis_url)} does not answer: {exc}"
        ) from exc
    return client


def _safe(url: str) -> str:
    """The URL without any password it carries, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"
