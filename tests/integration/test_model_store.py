"""Model versions in a real Redis: exact round trips, atomic switches, pruning, rollback, CLI.

Why against a real server: the guarantees (readers never see half a model, crashed publishes
are cleaned up, the pointer only names complete versions) live in the order and atomicity of
Redis commands, which only a real Redis can check.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from connector.exceptions import ConcurrentWriteError, ModelNotFoundError
from connector.keys import Keys
from connector.model.artifacts import ModelArtifacts
from connector.settings import CommonSettings
from connector.stores import model_versions as model_store
from connector.stores.model_versions import ModelStore, plan

SMALL_CHUNKS = 4096  # bytes: many chunks per array even for small test models


@pytest.fixture
def keys(settings: CommonSettings) -> Keys:
    return Keys(settings.dataset_group)


@pytest.fixture
def store(redis_db: redis.Redis, keys: Keys) -> ModelStore:
    return ModelStore(redis_db, keys, chunk_bytes=SMALL_CHUNKS, batch_bytes=8 * SMALL_CHUNKS)


def constant(seq: int, items: int = 3000, dim: int = 16) -> ModelArtifacts:
    """A version whose every number is `seq`, so a mixed-up load shows at once."""
    return ModelArtifacts(
        [f"item-{n}" for n in range(items)],
        {
            "item_embeddings": np.full((items, dim), seq, dtype=np.float32),
            "item_popularity": np.full(items, seq, dtype=np.int64),
            "gru_weights": np.full((dim, 3 * dim), seq, dtype=np.float32),
        },
        {"seq": seq, "metrics": {"ndcg@10": seq / 100}},
    )


def version_keys(client: redis.Redis, keys: Keys, version: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{keys.model_version(version)}*", count=1000))


def test_a_published_version_loads_back_exactly(store: ModelStore, redis_db: redis.Redis) -> None:
    rng = np.random.default_rng(7)
    items = ["plain", "with:colon", "{braces}", "star*", "ünïcode", 'quote"', ""] + [
        f"i{n}" for n in range(993)
    ]
    published = ModelArtifacts(
        items,
        {
            "item_embeddings": rng.standard_normal((1000, 24)).astype(np.float32),
            "item_bias": rng.standard_normal(1000),
            "item_created": rng.integers(0, 2**40, 1000),
            "item_new": rng.random(1000) < 0.5,
            "gru_weights": rng.standard_normal((24, 72)).astype(np.float32),
            "event_type_embeddings": rng.standard_normal((3, 4, 5)).astype(np.float16),
            "temperature": np.array(0.5),
        },
        {"architecture": "gru", "hyper": {"bptt": 32}, "vocab": ["click", "buy"], "t": 1.5},
    )
    version = store.publish(published, keep=3)
    loaded = store.load()
    assert loaded.items == items
    assert loaded.meta == published.meta
    assert set(loaded.arrays) == set(published.arrays)
    for name, array in published.arrays.items():
        back = loaded.arrays[name]
        assert (back.dtype, back.shape) == (array.dtype, array.shape), name
        assert np.array_equal(back, array), name
    manifest = store.manifest(version)
    assert manifest.complete and manifest.items == 1000
    assert manifest.arrays["item_embeddings"].chunks == 24  # 96-byte rows, 42 per 4 KiB
    assert store.load(version).items == items


def test_the_documented_keys_hold_raw_little_endian_rows(
    store: ModelStore, redis_db: redis.Redis, keys: Keys
) -> None:
    published = constant(1)
    published.arrays["item_embeddings"][:] = np.arange(3000 * 16).reshape(3000, 16)
    version = store.publish(published, keep=1)
    assert redis_db.get(keys.model_current) == version.encode()
    manifest = json.loads(redis_db.get(keys.model_manifest(version)) or b"")
    layout = manifest["arrays"]["item_embeddings"]
    assert layout["dtype"] == "<f4" and layout["shape"] == [3000, 16]
    rows = layout["chunk_rows"]
    second = redis_db.get(keys.model_chunk(version, "item_embeddings", 1)) or b""
    got = np.frombuffer(second, dtype="<f4").reshape(-1, 16)
    assert np.array_equal(got, published.arrays["item_embeddings"][rows : 2 * rows])
    first_ids = json.loads(redis_db.get(keys.model_ids(version, 0)) or b"")
    assert first_ids[:2] == ["item-0", "item-1"]
    assert json.loads(redis_db.get(keys.model_meta(version)) or b"") == published.meta


def test_keep_deletes_older_versions_and_all_their_keys(
    store: ModelStore, redis_db: redis.Redis, keys: Keys
) -> None:
    versions = [store.publish(constant(seq), keep=2) for seq in range(4)]
    assert [info.version for info in store.versions()] == versions[:1:-1]
    assert store.current_version() == versions[-1]
    assert [info.current for info in store.versions()] == [True, False]
    for gone in versions[:2]:
        assert version_keys(redis_db, keys, gone) == []
        with pytest.raises(ModelNotFoundError):
            store.load(gone)
    assert store.load(versions[2]).meta["seq"] == 2


def test_nothing_published_and_unknown_versions_are_not_found(store: ModelStore) -> None:
    assert store.current_version() is None and store.versions() == []
    with pytest.raises(ModelNotFoundError, match="no model version is published"):
        store.load()
    store.publish(constant(0, items=10), keep=1)
    with pytest.raises(ModelNotFoundError, match="nope"):
        store.load("nope")
    with pytest.raises(ModelNotFoundError, match="nope"):
        store.rollback("nope")


def test_a_failed_publish_leaves_nothing_and_keeps_the_current_version(
    store: ModelStore, redis_db: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.publish(constant(1), keep=2)

    def failing_parts(array: np.ndarray, layout: Any) -> Any:
        yield array[:1].tobytes()
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(model_store, "_array_parts", failing_parts)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.publish(constant(2), keep=2)
    assert store.current_version() == first
    assert [info.version for info in store.versions()] == [first]
    model_keys = redis_db.scan_iter(match=f"{keys.base}model:v:*", count=1000)
    assert {key.decode().split(":")[4] for key in model_keys} == {first}


def _crashed_publish(client: redis.Redis, keys: Keys, version: str, age: float) -> None:
    """What a worker killed halfway through a publish leaves: an incomplete manifest, some
    chunks, a versions entry."""
    created = time.time() - age
    manifest = plan(version, constant(9, items=100), created, SMALL_CHUNKS)
    client.zadd(keys.model_versions, {version: created})
    client.set(keys.model_manifest(version), manifest.to_json())
    client.set(keys.model_ids(version, 0), b'["item-0"]')
    client.set(keys.model_chunk(version, "item_embeddings", 0), b"\0" * 64)


def test_a_crashed_publish_is_cleaned_up_once_stale_and_never_loaded(
    store: ModelStore, redis_db: redis.Redis, keys: Keys
) -> None:
    _crashed_publish(redis_db, keys, "old-crash", age=3600)
    _crashed_publish(redis_db, keys, "in-progress", age=1)
    redis_db.set(keys.model_current, "in-progress")  # a pointer to it must not be trusted
    with pytest.raises(ModelNotFoundError):
        store.load()
    with pytest.raises(ModelNotFoundError, match="not complete"):
        store.rollback("in-progress")
    redis_db.delete(keys.model_current)
    listed = {info.version: info.complete for info in store.versions()}
    assert listed == {"old-crash": False, "in-progress": False}
    new = store.publish(constant(1, items=100), keep=1)
    assert version_keys(redis_db, keys, "old-crash") == []
    assert len(version_keys(redis_db, keys, "in-progress")) == 3  # another worker's, maybe
    assert {info.version for info in store.versions()} == {new, "in-progress"}


def test_a_publish_whose_version_was_taken_for_a_crash_does_not_become_current(
    redis_db: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(redis_db, keys, chunk_bytes=SMALL_CHUNKS)
    first = store.publish(constant(1, items=50), keep=3)
    impatient = ModelStore(redis_db, keys, stale_after=0.0)
    original = model_store._id_parts

    def parts_then_prune(items: Any, rows: int) -> Any:
        yield from original(items, rows)
        impatient.prune(keep=3)  # another worker decides this publish has crashed

    monkeypatch.setattr(model_store, "_id_parts", parts_then_prune)
    with pytest.raises(ConcurrentWriteError, match="publish again"):
        store.publish(constant(2, items=50), keep=3)
    assert store.current_version() == first
    assert [info.version for info in store.versions()] == [first]


def test_rollback_moves_the_pointer_and_announces(store: ModelStore) -> None:
    first = store.publish(constant(1, items=100), keep=3)
    subscription = store.subscribe()
    try:
        second = store.publish(constant(2, items=100), keep=3)
        store.rollback(first)
        assert store.current_version() == first
        assert store.load().meta["seq"] == 1
        assert [_next_message(subscription) for _ in range(2)] == [second, first]
    finally:
        subscription.close()
    third = store.publish(constant(3, items=100), keep=1)
    assert [info.version for info in store.versions()] == [third]


def _next_message(subscription: Any, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = subscription.get_message(timeout=0.1)
        if message is not None:
            return str(message["data"].decode())
    raise AssertionError("no announcement arrived")


def test_readers_only_ever_see_complete_versions_while_publishing(
    store: ModelStore, redis_db: redis.Redis, keys: Keys
) -> None:
    """Each version is filled with its sequence number; a load mixing two versions, or a
    half-written one, would show other numbers. keep=2 makes publishes delete versions that
    readers are still reading, which they must survive by starting again."""
    published: list[str] = []
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()
    store.publish(constant(0, items=20_000), keep=2)

    def publisher() -> None:
        pauses = np.random.default_rng(3).uniform(0.0, 0.15, size=10)
        try:
            for seq, pause in enumerate(pauses, start=1):
                published.append(store.publish(constant(seq, items=20_000), keep=2))
                time.sleep(pause)  # sometimes in the middle of a load, sometimes not
                if seq % 3 == 0:  # on a slow machine, let the reader finish a load or so
                    _wait_for(seen, seq // 3, 10.0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        reading = ModelStore(redis_db, keys, chunk_bytes=SMALL_CHUNKS, batch_bytes=8192)
        try:
            while not done.is_set():
                seen.append(_consistent_seq(reading.load()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(published) == 10 and len(seen) >= 3
    assert seen == sorted(seen)  # the pointer only moves forward here
    assert len(set(seen)) >= 2


def test_a_load_that_loses_its_version_starts_again_from_the_pointer(
    store: ModelStore, redis_db: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.publish(constant(1), keep=1)
    reader = ModelStore(redis_db, keys, chunk_bytes=SMALL_CHUNKS)
    read = reader._read_batches
    newer: list[str] = []

    def read_during_a_publish(chunk_keys: list[str], version: str) -> Iterator[list[bytes]]:
        if not newer:  # the first read: a publish with keep=1 deletes what is being read
            newer.append(store.publish(constant(2), keep=1))
        return read(chunk_keys, version)

    monkeypatch.setattr(reader, "_read_batches", read_during_a_publish)
    loaded = reader.load()
    assert _consistent_seq(loaded) == 2 and reader.current_version() == newer[0]


def _wait_for(found: list[int], count: int, seconds: float) -> None:
    """Until `found` holds `count` entries, or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def _consistent_seq(artifacts: ModelArtifacts) -> int:
    seq = int(artifacts.meta["seq"])
    assert artifacts.items == [f"item-{n}" for n in range(len(artifacts.items))]
    for name, array in artifacts.arrays.items():
        assert np.all(array == seq), f"{name} mixes versions in a load of version {seq}"
    return seq


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "models", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_models_command_lists_shows_and_rolls_back(
    store: ModelStore, service_env: dict[str, str]
) -> None:
    first = store.publish(constant(1, items=100), keep=5)
    second = store.publish(constant(2, items=100), keep=5)
    listed = run(["list"], service_env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"* {second}") and lines[1].startswith(f"  {first}")
    assert "100 items  complete  ndcg@10=0.0200" in lines[0]

    shown = run(["show", first], service_env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["meta"] == {"seq": 1, "metrics": {"ndcg@10": 0.01}}
    assert document["manifest"]["version"] == first and document["manifest"]["complete"]
    assert document["manifest"]["arrays"]["item_embeddings"]["shape"] == [100, 16]

    rolled = run(["rollback", first], service_env)
    assert rolled.returncode == 0, rolled.stderr
    assert first in rolled.stdout
    assert store.current_version() == first
    assert run(["list"], service_env).stdout.splitlines()[1].startswith(f"* {first}")


@pytest.mark.parametrize("command", ["show", "rollback"])
def test_models_command_refuses_an_unknown_version(
    store: ModelStore, service_env: dict[str, str], command: str
) -> None:
    current = store.publish(constant(1, items=10), keep=5)
    result = run([command, "no-such-version"], service_env)
    assert result.returncode != 0
    assert result.stderr.startswith("Error: no model version 'no-such-version'")
    assert store.current_version() == current


def test_models_list_says_when_there_is_nothing(service_env: dict[str, str]) -> None:
    result = run(["list"], service_env)
    assert result.returncode == 0 and "no model versions" in result.stdout
