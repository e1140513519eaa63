"""Counters of key layout version 1 move to version 2's keys when the connector starts, added
to whatever version 2 already counted, once."""

from __future__ import annotations

import pytest

from connector.keys import Keys
from connector.redis_client import RedisClient
from connector.settings import ConnectorSettings
from connector.stores.counters import migrate_legacy_counters, recent_buckets
from connector.wiring import event_processor
from tests.integration.helpers import prepare_group

pytestmark = pytest.mark.single_redis  # version 1 never ran on a cluster


def test_version_1_counters_move_to_version_2_once(
    settings: ConnectorSettings, redis_db: RedisClient
) -> None:
    prepare_group(settings)
    keys = Keys(settings.dataset_group)
    old_types, old_sources, old_buckets = keys.legacy_metrics()
    redis_db.hset(f"{old_types}3600", mapping={"click": 5, "buy": 1})
    redis_db.hset(f"{old_sources}3600", mapping={"SOURCE_NAME_UNDEFINED": 6})
    redis_db.expire(f"{old_types}3600", 1000)
    redis_db.hset(f"{old_types}7200", mapping={"click": 2})
    redis_db.zadd(old_buckets, {"3600": 3600, "7200": 7200})
    redis_db.hset(keys.type_counts(7200), mapping={"click": 1})  # counted by version 2 already
    redis_db.zadd(keys.metric_buckets, {"7200": 7200})

    event_processor(settings)  # the connector's start migrates
    assert migrate_legacy_counters(redis_db, keys) == 0  # nothing left to move
    counts = {c.bucket: (c.by_type, c.by_source) for c in recent_buckets(redis_db, keys, 10)}
    assert counts == {
        3600: ({"buy": 1, "click": 5}, {"SOURCE_NAME_UNDEFINED": 6}),
        7200: ({"click": 3}, {}),
    }
    assert not redis_db.exists(old_buckets, f"{old_types}3600", f"{old_types}7200")
    assert 0 < redis_db.ttl(keys.type_counts(3600)) <= 1000
