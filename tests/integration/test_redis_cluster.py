"""The ingest path on a 3-master Redis Cluster leaves the state it leaves on one server, key by
key, and a batch interrupted between its per-node parts and its counts is counted once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from connector.keys import Keys
from connector.records import SourceRecord
from connector.redis_client import RedisClient, open_url
from connector.settings import ConnectorSettings
from connector.stores import cluster_apply
from connector.wiring import event_processor
from tests.integration.faults_helpers import redis_state
from tests.integration.helpers import prepare_group, put_events

pytestmark = pytest.mark.single_redis  # compares the two itself

T = 1_700_000_000
TYPES = ("click", "watch", "buy")


def stream(tracking_id: str, seed: int = 7) -> list[bytes]:
    """Records of 30 users and 8 anonymous sessions that later log in: several event types
    and attribution sources, resends, reused eventIds and events out of time order."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible stream, not a secret
    records: list[bytes] = []
    for n in range(400):
        ts = T + n * 5 + rng.randint(-40, 40)
        event: dict[str, Any] = {
            "eventType": rng.choice(TYPES),
            "itemId": f"item-{rng.randint(0, 60)}",
            "sentAt": ts,
        }
        if n % 7 == 0:
            event["eventId"] = f"e{n % 50}"  # some reused
        if n % 5 == 0:
            event["metricAttribution"] = {"eventAttributionSource": f"src-{n % 3}"}
        session = f"s{rng.randint(0, 7)}"
        anonymous = n < 120 and rng.random() < 0.5
        user = None if anonymous else f"user-{rng.randint(0, 29)}"
        if not anonymous and user is not None and session.endswith(user[-1]):
            session = f"{session}-{user}"  # most users keep sessions of their own
        records.append(put_events(tracking_id, session, [event], user=user))
        if n % 31 == 0:
            records.append(records[-1])  # an exact resend
    for n in range(8):  # logins: the anonymous sessions are stitched to users
        login = {"eventType": "click", "itemId": "home", "sentAt": T + 3000 + n}
        records.append(put_events(tracking_id, f"s{n}", [login], user=f"user-{n}"))
    return records


def ingest(settings: ConnectorSettings, values: list[bytes], size: int = 37) -> None:
    """The records through the connector's processor, in batches of `size`."""
    processor = event_processor(settings)
    records = [
        SourceRecord(settings.topics.events, 0, offset, b"k", value)
        for offset, value in enumerate(values)
    ]
    for start in range(0, len(records), size):
        processor.process(records[start : start + size])


@pytest.fixture
def on_cluster(settings: ConnectorSettings, redis_cluster_url: str) -> Iterator[ConnectorSettings]:
    """A second group of this test, on the session's Redis Cluster."""
    group = f"{settings.dataset_group}c"
    other = settings.model_copy(
        update={
            "dataset_group": group,
            "redis_url": redis_cluster_url,
            "schemas_topic": f"{settings.schemas_topic}c",
            "trackers_topic": f"{settings.trackers_topic}c",
        }
    )
    yield other
    client = open_url(redis_cluster_url)
    keys = list(client.scan_iter(match=f"streamrec:{group}:*"))
    if keys:
        client.delete(*keys)


def state(client: RedisClient, group: str) -> dict[str, Any]:
    """The group's keys and values, named without the group (the active set apart: it is
    scored by wall-clock time)."""
    return {
        key.replace(group, "G"): value
        for key, value in redis_state(client, group, skip=(":active",)).items()  # type: ignore[arg-type]
    }


def test_the_same_stream_leaves_the_same_state_on_one_server_and_on_a_cluster(
    settings: ConnectorSettings, on_cluster: ConnectorSettings, redis_db: RedisClient
) -> None:
    single_values = stream(prepare_group(settings))
    cluster_values = stream(prepare_group(on_cluster))
    ingest(settings, single_values)
    ingest(on_cluster, cluster_values)
    cluster = open_url(on_cluster.redis_url)
    nodes = {
        cluster.get_node_from_key(key).name for key in state(cluster, on_cluster.dataset_group)
    }  # type: ignore[union-attr]
    assert len(nodes) == 3  # the state really is spread over the three masters

    expected = state(redis_db, settings.dataset_group)
    got = state(cluster, on_cluster.dataset_group)
    assert sorted(got) == sorted(expected)
    assert got == expected
    keys = Keys("G")
    assert expected[keys.metric_buckets]  # counted, and sessions were stitched:
    assert sum(key.endswith(":user") for key in expected) >= 8
    assert not [key for key in got if key.endswith(":pending")]  # journals cleared


def test_a_batch_interrupted_before_its_counts_is_counted_once_by_recovery(
    settings: ConnectorSettings,
    on_cluster: ConnectorSettings,
    redis_db: RedisClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = stream(prepare_group(on_cluster))[:60]
    ingest(settings, stream(prepare_group(settings))[:60], size=60)

    def crash(*_: object) -> None:
        raise KeyboardInterrupt("killed between the parts and the counts")

    monkeypatch.setattr(cluster_apply.ClusterApply, "_add_counts", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest(on_cluster, values, size=60)
    monkeypatch.undo()
    cluster = open_url(on_cluster.redis_url)
    keys = Keys(on_cluster.dataset_group)
    assert not cluster.exists(keys.metric_buckets)  # histories written, nothing counted
    assert cluster.hlen(keys.pending_counts) == 1

    # The replay: every event is a duplicate now; the restarted connector's first batch
    # runs the recovery, which adds what the parts kept.
    ingest(on_cluster, values, size=60)
    assert state(cluster, on_cluster.dataset_group) == {
        **state(redis_db, settings.dataset_group),
        "streamrec:G:metrics:{m:G}:pending": cluster.hgetall(keys.pending_counts),
    }
    store = event_processor(on_cluster)._store  # noqa: SLF001 - the store under test
    assert store._cluster is not None  # noqa: SLF001
    assert store._cluster.recover(100, older_than=0) == 0  # counted already; entry removed
    assert state(cluster, on_cluster.dataset_group) == state(redis_db, settings.dataset_group)


def test_a_recovery_beside_a_live_batch_counts_each_part_once(
    settings: ConnectorSettings,
    on_cluster: ConnectorSettings,
    redis_db: RedisClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest(settings, stream(prepare_group(settings)), size=50)
    counting = cluster_apply.ClusterApply._add_counts  # noqa: SLF001

    def recover_first(self: cluster_apply.ClusterApply, *args: Any) -> int:
        # Another connector's recovery, just before this batch counts: it sends the same
        # parts' counts (the original method, so it does not recurse into this one).
        monkeypatch.setattr(cluster_apply.ClusterApply, "_add_counts", counting)
        try:
            assert self.recover(100, older_than=3600) >= 1
        finally:
            monkeypatch.setattr(cluster_apply.ClusterApply, "_add_counts", recover_first)
        return counting(self, *args)

    monkeypatch.setattr(cluster_apply.ClusterApply, "_add_counts", recover_first)
    ingest(on_cluster, stream(prepare_group(on_cluster)), size=50)
    cluster = open_url(on_cluster.redis_url)
    assert state(cluster, on_cluster.dataset_group) == state(redis_db, settings.dataset_group)
