"""Fault tests: the connector killed, Kafka and Redis stopped, the worker killed while it
publishes, replicas joining and leaving — each ending with an exact reconciliation of what
was produced against the Interactions dataset, the dead-letter topic and Redis.

Tests that stop a service start their own (tests/integration/faults_helpers.OwnService), so
the shared broker and Redis of other tests never go away. docs/guarantees.md maps each
promise to the test here that proves it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from connector.devservices.process import free_port
from connector.keys import Keys
from connector.model.artifacts import ModelArtifacts
from connector.model.model import Hyperparameters
from connector.redis_client import mget, open_url
from connector.settings import ConnectorSettings
from connector.stores.lists import StoredList
from connector.stores.model_versions import ModelStore
from tests.integration.faults_helpers import (
    OwnService,
    Stream,
    alive,
    committed_everything,
    counted,
    most_copies,
    most_dead_letter_copies,
    reconcile_dataset,
    reconcile_order,
    reconcile_redis,
    redis_state,
    wait_until,
)
from tests.integration.helpers import prepare_group
from tests.integration.test_connector_process import produce, records_consumed
from tests.integration.test_readiness import get
from worker.data.interactions import from_rows
from worker.training.fit import train
from worker.training.pipeline import Catalog, item_arrays

pytestmark = pytest.mark.faults
Start = Callable[..., subprocess.Popen[bytes]]
APPEND_TIMEOUT = 2.0  # STREAMREC_CONNECTOR_APPEND_TIMEOUT_SECONDS of the Kafka outage test


@pytest.fixture
def start_connector(service_env: dict[str, str], tmp_path: Path) -> Iterator[Start]:
    """Starts `streamrec connector` processes with this test's settings (overridable); each
    logs to its own file, and whatever still runs at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**overrides: str) -> subprocess.Popen[bytes]:
        env = {
            **service_env,
            "STREAMREC_CONNECTOR_WEB_PORT": str(free_port()),
            "STREAMREC_CONNECTOR_SESSION_TIMEOUT_SECONDS": "6",
            **overrides,
        }
        log = (tmp_path / f"connector-{len(started)}.log").open("wb")
        child = subprocess.Popen(
            ["streamrec", "connector"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,  # faust's data folder goes there, not into the checkout
        )
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(30)


def on(settings: ConnectorSettings, **where: str) -> ConnectorSettings:
    """The same test settings pointed at other services."""
    return settings.model_copy(update=where)


def logs(tmp_path: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(tmp_path.glob("connector-*.log"))
    )


def tiny_model(settings: ConnectorSettings) -> str:
    """Publish a small model over the stream's items (i0..i996) so lists can be made."""
    rows = [
        {"USER_ID": f"w{u}", "ITEM_ID": f"i{(u * 7 + step) % 997}", "TIMESTAMP": 1000 + step}
        for u in range(120)
        for step in range(10)
    ]
    data = from_rows(rows)
    model = train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=2), seed=3)
    arrays = item_arrays(model, data, Catalog([], {}, {}))
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    return store.publish(model.to_artifacts(arrays), keep=3)


# 1. SIGKILL at random points of 100,000 events


def test_sigkill_at_random_points_of_100k_events_loses_and_doubles_nothing(
    settings: ConnectorSettings, redis_db: redis.Redis, start_connector: Start
) -> None:
    """Builds on test_connector_process's SIGKILL test: five times as many events, kills at
    random points (seeded), anonymous sessions stitched at login, resent duplicates and
    broken records in the stream; reconciled record by record."""
    stream = Stream(prepare_group(settings), users=400, total=100_000)
    for start in range(0, len(stream.records), 50_000):  # within the producer's queue
        produce(settings, stream.records[start : start + 50_000])
    keys, rng = Keys(settings.dataset_group), random.Random(7)  # noqa: S311 - seeded kill points
    thresholds = sorted(rng.sample(range(5_000, 90_000), 4))
    at_kill: list[int] = []
    for threshold in thresholds:
        connector = start_connector()
        wait_until(
            lambda t=threshold, c=connector: alive(c) and counted(redis_db, keys) >= t,
            180,
            f"{threshold}",
        )
        time.sleep(rng.uniform(0.0, 0.5))  # land anywhere in a batch: plan, append, apply
        connector.send_signal(signal.SIGKILL)
        connector.wait(30)
        at_kill.append(counted(redis_db, keys))
    assert all(0 < count < len(stream.sent) for count in at_kill), at_kill
    last = start_connector()
    wait_until(lambda: alive(last) and committed_everything(settings), 300, "all committed")
    assert counted(redis_db, keys) == len(stream.sent)
    reconcile_redis(settings, redis_db, stream)
    reconcile_dataset(settings, stream)


# 2. The broker stopped and restarted under the running connector


def test_kafka_stopped_and_restarted_while_the_connector_runs(
    settings: ConnectorSettings, tmp_path: Path, start_connector: Start
) -> None:
    """The outage outlasts the append timeout (2 s here, 30 s by default), so the batches
    the connector holds when the broker goes fail their appends and are retried with
    backoff until it is back; each user's events still reach the dataset in order."""
    broker = OwnService("kafka", tmp_path / "kafka")
    broker.start()
    try:
        own = on(settings, kafka_bootstrap=broker.address)
        client = open_url(own.redis_url)
        stream = Stream(prepare_group(own), users=100, total=20_000, shuffled_times=True)
        half = len(stream.records) // 2
        produce(own, stream.records[:half])
        keys = Keys(own.dataset_group)
        connector = start_connector(
            STREAMREC_KAFKA_BOOTSTRAP=broker.address,
            STREAMREC_CONNECTOR_APPEND_TIMEOUT_SECONDS=str(APPEND_TIMEOUT),
        )
        wait_until(lambda: counted(client, keys) > 1_000, 120, "the first events")
        broker.stop()
        time.sleep(5 * APPEND_TIMEOUT)  # appends time out and are retried meanwhile
        assert connector.poll() is None, "the connector exited while Kafka was down"
        broker.start()
        produce(own, stream.records[half:])
        wait_until(lambda: alive(connector) and committed_everything(own), 300, "all committed")
        assert connector.poll() is None
        delays = [e["retry_in"] for e in retries(tmp_path) if "unconfirmed" in e["error"]]
        assert delays[:3] == [0.5, 1.0, 2.0], delays  # a batch's appends timed out, retried
        reconcile_redis(own, client, stream)
        reconcile_dataset(own, stream)
        reconcile_order(own, stream)
        # A retry does not add a copy per attempt: what a timed-out append left queued is
        # dropped before the retry; only what was in flight when the broker went can arrive
        # once more.
        assert most_copies(own) <= 2
    finally:
        broker.stop()
        _delete_group_keys(settings)


def retries(tmp_path: Path) -> list[dict[str, Any]]:
    """The connectors' structured "batch failed, retrying" log lines, in order."""
    found = []
    for line in logs(tmp_path).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the first line starts with the terminal codes faust writes
        if isinstance(entry, dict) and entry.get("message") == "batch failed, retrying":
            found.append(entry)
    return found


# 3. Redis stopped, restarted empty, then `streamrec rebuild`


@pytest.mark.single_redis  # stops and restarts its own redis-server
def test_redis_restarted_empty_the_connector_waits_and_rebuild_restores_it(
    settings: ConnectorSettings, tmp_path: Path, start_connector: Start, service_env: dict[str, str]
) -> None:
    cache = OwnService("redis", tmp_path / "redis")
    cache.start()
    try:
        own = on(settings, redis_url=cache.address)
        client = open_url(own.redis_url)
        stream = Stream(prepare_group(own), users=100, total=20_000)
        tiny_model(own)
        _put_metadata(own)
        env = {"STREAMREC_REDIS_URL": cache.address, "STREAMREC_REDIS_SOCKET_TIMEOUT_SECONDS": "2"}
        port = free_port()
        connector = start_connector(**env, STREAMREC_CONNECTOR_WEB_PORT=str(port))
        keys = Keys(own.dataset_group)
        produce(own, stream.records)
        wait_until(lambda: counted(client, keys) > 3_000, 120, "the first events")
        held = counted(client, keys)
        cache.stop()
        time.sleep(60)  # every batch fails on Redis meanwhile: retried, never skipped
        assert connector.poll() is None, "the connector exited while Redis was down"
        answer = get(port, "/readyz")  # alive, but not ready while batches wait for Redis
        assert answer is not None and answer[0] == 503, answer
        assert str(answer[1]["reason"]).startswith("Redis does not answer"), answer
        assert get(port, "/healthz") == (200, {"status": "ok"})
        cache.start()  # empty: no persistence
        wait_until(lambda: (get(port, "/readyz") or (0,))[0] == 200, 60, "/readyz 200 again")
        wait_until(lambda: alive(connector) and committed_everything(own), 300, "all committed")
        assert connector.poll() is None
        assert "batch failed, retrying" in logs(tmp_path)
        lost = len(stream.sent) - counted(client, keys)
        # everything Redis held is gone, but for the batch in flight at the stop: it is
        # retried whole and applied again into the empty Redis
        assert lost >= held - 1_000 > 0, (held, lost)
        reconcile_dataset(own, stream)  # Kafka has everything
        # once: a retry of the Redis apply does not append the batch again
        assert most_copies(own) == 1 and most_dead_letter_copies(own) == 1
        version = tiny_model(own)  # the models lived in Redis too: publish again
        rebuild = _run(["streamrec", "-v", "rebuild"], {**service_env, **env})
        assert "replayed" in rebuild.stderr and "lists" in rebuild.stdout
        reconcile_redis(own, client, stream)
        _reconcile_lists_and_metadata(own, client, stream, version)
        before = redis_state(client, own.dataset_group)
        again = _run(["streamrec", "rebuild"], {**service_env, **env})
        assert " 0 events restored" in again.stdout and " 0 lists" in again.stdout, again.stdout
        assert redis_state(client, own.dataset_group) == before  # idempotent, lists included
    finally:
        cache.stop()


def _put_metadata(settings: ConnectorSettings) -> None:
    items = {
        "items": [
            {"itemId": f"i{n}", "properties": {"genres": "a|b", "creationTimestamp": 1}}
            for n in range(10)
        ]
    }
    users = {
        "users": [
            {"userId": f"u{n}", "properties": {"age": 30 + n, "gender": "x"}} for n in range(10)
        ]
    }
    produce_to(settings, settings.topics.items, [(b"i", json.dumps(items).encode())])
    produce_to(settings, settings.topics.users, [(b"u", json.dumps(users).encode())])


def produce_to(settings: ConnectorSettings, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(settings.kafka_config())
    for key, value in values:
        producer.produce(topic, value, key=key)
    assert producer.flush(60) == 0


def _reconcile_lists_and_metadata(
    settings: ConnectorSettings, client: redis.Redis, stream: Stream, version: str
) -> None:
    keys = Keys(settings.dataset_group)
    subjects = list(stream.histories(settings.history_length))
    raws = mget(client, [keys.recommendations(s) for s in subjects])
    assert all(raw is not None for raw in raws), "every subject has a list again"
    assert {StoredList.from_json(raw).version for raw in raws if raw} == {version}
    active = {tag.decode() for tag in client.zrange(keys.active_subjects, 0, -1)}
    assert active == {s.tag for s in subjects}
    for n in range(10):
        assert client.hgetall(keys.item(f"i{n}")) == {
            b"ITEM_ID": f"i{n}".encode(),
            b"GENRES": b"a|b",
            b"CREATION_TIMESTAMP": b"1",
        }
        assert client.hgetall(keys.user(f"u{n}")) == {
            b"USER_ID": f"u{n}".encode(),
            b"AGE": str(30 + n).encode(),
            b"GENDER": b"x",
        }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _delete_group_keys(settings: ConnectorSettings) -> None:
    client = open_url(settings.redis_url)
    found = list(client.scan_iter(match=f"streamrec:{settings.dataset_group}:*"))
    if found:
        client.delete(*found)


def test_rebuild_into_an_empty_redis_equals_the_state_ingest_left(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    start_connector: Start,
    service_env: dict[str, str],
) -> None:
    """Everything but the lists (which explore at random) and the model, key by key and
    score by score; then a rebuild on top of the live state changes nothing."""
    stream = Stream(prepare_group(settings), users=60, total=6_000)
    _put_metadata(settings)
    produce(settings, stream.records)
    connector = start_connector()
    wait_until(lambda: alive(connector) and committed_everything(settings), 180, "all committed")
    wait_until(lambda: redis_db.exists(Keys(settings.dataset_group).user("u9")), 60, "users")
    connector.send_signal(signal.SIGTERM)
    connector.wait(60)
    skip = (":recs", ":active", ":model:")
    ingested = redis_state(redis_db, settings.dataset_group, skip)
    _delete_group_keys(settings)
    _run(["streamrec", "rebuild"], service_env)
    assert redis_state(redis_db, settings.dataset_group, skip) == ingested
    _run(["streamrec", "rebuild"], service_env)
    assert redis_state(redis_db, settings.dataset_group, skip) == ingested
    reconcile_redis(settings, redis_db, stream)


# 4. The worker killed while it publishes a model


_PUBLISH = """
import sys, numpy as np, redis
from connector.keys import Keys
from connector.model.artifacts import ModelArtifacts
from connector.stores.model_versions import ModelStore
from connector.redis_client import open_url
url, group = sys.argv[1], sys.argv[2]
items = [f"i{n}" for n in range(200_000)]
embeddings = np.full((200_000, 64), 2.0, np.float32)
arrays = {"item_embeddings": embeddings, "gru": np.ones((4, 4), np.float32)}
client = open_url(url)
store = ModelStore(client, Keys(group), chunk_bytes=1 << 16, batch_bytes=1 << 16)
store.publish(ModelArtifacts(items, arrays, {"seq": 2}), keep=3)
"""


def _artifacts(seq: int) -> ModelArtifacts:
    items = [f"i{n}" for n in range(1_000)]
    arrays = {"item_embeddings": np.full((1_000, 16), float(seq), np.float32)}
    return ModelArtifacts(items, arrays, {"seq": seq})


def test_worker_killed_mid_publish_serving_keeps_the_old_version_and_next_publish_cleans_up(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    keys = Keys(settings.dataset_group)
    store = ModelStore(redis_db, keys)
    old = store.publish(_artifacts(1), keep=3)
    child = subprocess.Popen(
        [sys.executable, "-c", _PUBLISH, settings.redis_url, settings.dataset_group],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:

        def half_written() -> bool:
            versions = [v.decode() for v in redis_db.zrange(keys.model_versions, 0, -1)]
            new = [v for v in versions if v != old]
            return (
                bool(new) and redis_db.exists(keys.model_chunk(new[0], "item_embeddings", 50)) == 1
            )

        wait_until(half_written, 60, "a publish half way", every=0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    crashed = next(
        v.decode() for v in redis_db.zrange(keys.model_versions, 0, -1) if v.decode() != old
    )
    assert not store.manifest(crashed).complete
    assert store.current_version() == old
    served = store.load()
    assert served.meta == {"seq": 1} and float(served.arrays["item_embeddings"][0, 0]) == 1.0
    written = list(redis_db.scan_iter(match=f"{keys.model_version(crashed)}*"))
    assert len(written) > 2  # manifest, meta, ids and some chunks
    store.publish(_artifacts(3), keep=3)  # young: may be another worker's publish in progress
    assert store.manifest(crashed) is not None
    time.sleep(1.1)
    newest = ModelStore(redis_db, keys, stale_after=1.0).publish(_artifacts(4), keep=3)
    assert list(redis_db.scan_iter(match=f"{keys.model_version(crashed)}*")) == []
    assert crashed.encode() not in redis_db.zrange(keys.model_versions, 0, -1)
    assert store.current_version() == newest and store.load().meta == {"seq": 4}


# 5. A replica joins and leaves in the middle of a stream


def test_a_second_connector_joins_and_leaves_mid_stream(
    settings: ConnectorSettings, redis_db: redis.Redis, start_connector: Start
) -> None:
    """test_connector_process starts two replicas together and stops one; here the second
    joins while events flow, takes partitions, and leaves while they still flow. Event
    times are shuffled, so only the dataset's record order can show each user's order."""
    stream = Stream(prepare_group(settings), users=100, total=30_000, shuffled_times=True)
    producing = threading.Thread(target=_produce_steadily, args=(settings, stream.records, 15.0))
    ports = [free_port(), free_port()]
    first = start_connector(STREAMREC_CONNECTOR_WEB_PORT=str(ports[0]))
    wait_until(lambda: records_consumed(ports[0]) >= 0, 60, "the first replica")
    producing.start()
    time.sleep(3)
    second = start_connector(STREAMREC_CONNECTOR_WEB_PORT=str(ports[1]))
    wait_until(lambda: records_consumed(ports[1]) > 0, 60, "the second replica consuming")
    assert producing.is_alive(), "the stream ended before the second replica joined"
    second.send_signal(signal.SIGTERM)
    second.wait(60)
    producing.join()
    wait_until(lambda: alive(first) and committed_everything(settings), 180, "all committed")
    reconcile_redis(settings, redis_db, stream)
    reconcile_dataset(settings, stream)
    reconcile_order(settings, stream)


def _produce_steadily(
    settings: ConnectorSettings, records: list[tuple[bytes, bytes]], seconds: float
) -> None:
    """Publish `records` evenly over about `seconds`."""
    steps = 100
    size = -(-len(records) // steps)
    for start in range(0, len(records), size):
        produce(settings, records[start : start + size])
        time.sleep(seconds / steps)
