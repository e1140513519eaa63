"""Issue 4 end to end on the real services: events through the connector into the broker,
a FULL run on them, a version in Redis that loads back exactly, `streamrec train` and
`streamrec models` as a user runs them, and an UPDATE that brings in a new item."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import urllib.request
from itertools import count
from pathlib import Path

import numpy as np
import pytest
import redis

from connector.devservices.process import free_port
from connector.ingest.processor import EventProcessor
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys
from connector.model.history import HistoryEntry
from connector.model.model import Model
from connector.records import SourceRecord
from connector.redis_client import open_url
from connector.serving.current_model import ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from connector.settings import CommonSettings, ConnectorSettings
from connector.sources.store import open_sources
from connector.stores.model_versions import ModelStore
from connector.wiring import event_processor, processors
from tests.integration.helpers import prepare_group, put_events
from worker.data.cache import load_training_data
from worker.data.catalog import read_items
from worker.exceptions import NotEnoughDataError
from worker.settings import WorkerSettings
from worker.training.isolated import RunProcessError, isolated_run
from worker.training.pipeline import Stopped, full_model
from worker.training.runs import item_catalog, run

T0 = 1_700_000_000
USERS, EVENTS_PER_USER, ITEMS = 40, 30, 25
_offsets = count()


@pytest.fixture
def worker_settings(settings: ConnectorSettings, tmp_path: Path) -> WorkerSettings:
    common = {name: getattr(settings, name) for name in CommonSettings.model_fields}
    return WorkerSettings(
        **common, worker_cache_dir=tmp_path / "cache", training_epochs=3, evaluation_users=20
    )


@pytest.fixture
def processor(settings: ConnectorSettings, redis_db: redis.Redis) -> EventProcessor:
    tracking_id = prepare_group(settings)
    processor = event_processor(settings)
    processor.tracking_id = tracking_id  # type: ignore[attr-defined]
    return processor


def publish_walks(processor: EventProcessor, settings: CommonSettings, extra_item: str = "") -> int:
    """Users walking a chain of items (i0 -> i1 -> ...), 1,200 events through the connector;
    with `extra_item`, every user then also sees it once. Returns the events sent."""
    tracking_id = processor.tracking_id  # type: ignore[attr-defined]
    records, sent = [], 0
    for user in range(USERS):
        items = [f"i{(user + step) % ITEMS}" for step in range(EVENTS_PER_USER)]
        if extra_item:
            items = [extra_item]
        for step, item in enumerate(items):
            ts = T0 + step + (10_000 if extra_item else 0)
            event = {
                "eventType": "click",
                "itemId": item,
                "sentAt": ts,
                "properties": {"device": "tv" if user % 2 else "phone"},
            }
            records.append(put_events(tracking_id, f"s{user}", [event], user=f"u{user}"))
            sent += 1
    for start in range(0, len(records), 500):
        batch = [
            SourceRecord(settings.topics.events, 0, next(_offsets), b"k", value)
            for value in records[start : start + 500]
        ]
        assert processor.process(batch).dead == 0
    return sent


def test_full_run_publishes_a_version_that_loads_back_exactly(
    processor: EventProcessor, settings: ConnectorSettings, worker_settings: WorkerSettings
) -> None:
    sent = publish_walks(processor, settings)
    data = load_training_data(worker_settings)
    assert len(data) == sent
    assert data.context_values["DEVICE"][1:] and set(data.context_values["DEVICE"][1:]) == {
        "tv",
        "phone",
    }

    model, arrays = full_model(
        data, worker_settings, item_catalog(read_items(worker_settings)), bool
    )
    artifacts = model.to_artifacts(arrays)
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    version = store.publish(artifacts, keep=2)

    loaded = store.load()
    assert store.current_version() == version
    assert loaded.items == artifacts.items and sorted(loaded.items) == sorted(data.items)
    assert loaded.arrays.keys() == artifacts.arrays.keys()
    for name, array in artifacts.arrays.items():
        assert loaded.arrays[name].dtype == array.dtype, name
        np.testing.assert_array_equal(loaded.arrays[name], array, err_msg=name)
    assert loaded.meta == artifacts.meta
    assert loaded.meta["data"]["interactions"] == sent
    assert 0.0 <= loaded.meta["metrics"]["hr@10"] <= 1.0

    # serving rebuilds the same model from the version: same scores for the same history
    history = [
        HistoryEntry("i3", "click", T0, {"DEVICE": "tv"}),
        HistoryEntry("i4", "click", T0 + 1),
    ]
    served = Model.from_artifacts(loaded)
    np.testing.assert_allclose(
        served.score_histories([history]), model.score_histories([history]), rtol=1e-5
    )


def test_cli_trains_lists_and_updates_with_a_new_item(
    processor: EventProcessor, settings: ConnectorSettings, worker_settings: WorkerSettings
) -> None:
    publish_walks(processor, settings)
    env = {**os.environ, **_env(worker_settings)}
    trained = subprocess.run(
        ["streamrec", "train", "--mode", "full"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    assert "epoch 3/3" in trained.stderr and "publishing" in trained.stderr  # progress shown
    assert "FULL on 1,200 interactions of 40 users" in trained.stdout
    assert "held-out metrics: ndcg@10=" in trained.stdout  # the new version's, as stored
    first = trained.stdout.split()[-1]

    publish_walks(processor, settings, extra_item="brand-new")
    version = run("update", worker_settings)
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    assert store.current_version() == version != first
    updated = store.load()
    assert "brand-new" in updated.items and updated.meta["based_on"] == first
    assert updated.meta["items_added"] == 1

    listed = subprocess.run(
        ["streamrec", "models", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert f"* {version}" in listed.stdout and first in listed.stdout


def _env(settings: WorkerSettings) -> dict[str, str]:
    """The STREAMREC_* variables that give a subprocess these settings."""
    names = (
        "dataset_group",
        "kafka_bootstrap",
        "redis_url",
        "schemas_topic",
        "trackers_topic",
        "worker_cache_dir",
        "training_epochs",
        "evaluation_users",
    )
    return {f"STREAMREC_{name.upper()}": str(getattr(settings, name)) for name in names}


def test_worker_stops_cleanly_on_sigterm_mid_training_and_publishes_nothing(
    processor: EventProcessor, settings: ConnectorSettings, worker_settings: WorkerSettings
) -> None:
    publish_walks(processor, settings)
    port = free_port()
    env = {
        **os.environ,
        **_env(worker_settings),
        "STREAMREC_TRAINING_EPOCHS": "200",
        "STREAMREC_WORKER_WEB_PORT": str(port),
    }
    worker = subprocess.Popen(
        ["streamrec", "-v", "worker"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert worker.stderr is not None
        for line in worker.stderr:  # wait until training is under way
            if "epoch 1/" in line:
                break
        pages = {path: _get(port, path) for path in ("/healthz", "/readyz", "/metrics")}
        assert pages["/healthz"][0] == 200 and pages["/readyz"] == (200, '{"status": "ready"}')
        assert "streamrec_worker_runs_total" in pages["/metrics"][1]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    assert store.current_version() is None and store.versions() == []


def _get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:  # noqa: S310
        return answer.status, answer.read().decode()


def test_a_run_in_a_child_process_publishes_and_its_errors_come_back_by_kind(
    processor: EventProcessor, settings: ConnectorSettings, worker_settings: WorkerSettings
) -> None:
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    with pytest.raises(NotEnoughDataError, match="interactions"):  # nothing ingested yet
        isolated_run("full", worker_settings, lambda: False)
    publish_walks(processor, settings)
    with pytest.raises(Stopped):  # asked to stop before it could publish
        isolated_run("full", worker_settings, lambda: True)
    assert store.versions() == []
    version = isolated_run("full", worker_settings, lambda: False)
    assert store.current_version() == version
    assert len(Model.from_artifacts(store.load(version)).items) == ITEMS


def test_a_run_whose_child_process_is_killed_fails_and_the_next_one_runs(
    processor: EventProcessor, settings: ConnectorSettings, worker_settings: WorkerSettings
) -> None:
    publish_walks(processor, settings)
    slow = worker_settings.model_copy(update={"training_epochs": 200})

    def kill_the_child() -> bool:
        for child in multiprocessing.active_children():
            if child.name == "streamrec-full":
                os.kill(child.pid or 0, signal.SIGKILL)
        return False

    with pytest.raises(RunProcessError, match="exit code -9"):
        isolated_run("full", slow, kill_the_child)
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    assert store.current_version() is None
    version = isolated_run("full", worker_settings, lambda: False)  # the next run
    assert store.current_version() == version


def test_an_item_deleted_from_the_catalogue_leaves_the_next_versions_answers(
    processor: EventProcessor, settings: ConnectorSettings, worker_settings: WorkerSettings
) -> None:
    """A Debezium delete of item i3 (which has interactions): FULL publishes a version that
    never serves it, and an UPDATE after the tombstone is forgotten still retires it."""
    publish_walks(processor, settings)
    topic = f"shop.products.{settings.dataset_group}"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, 1)])
    mapping = {"target": "items", "fields": {"itemId": {"path": "id"}}}
    open_sources(settings).create("products", topic, "debezium", mapping, None)
    changes = [
        {"op": "r", "before": None, "after": {"id": "i3"}},
        {"op": "d", "before": {"id": "i3"}, "after": None},
    ]
    records = [
        SourceRecord(topic, 0, n, b"k", json.dumps(change).encode())
        for n, change in enumerate(changes)
    ]
    assert processors(settings).sources[topic].process(records).dead == 0
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))

    def served_items(version: str) -> set[str]:
        served = ServingModel.from_artifacts(version, store.load(version))
        histories = [[HistoryEntry(f"i{(n + 2) % ITEMS}", "click", T0)] for n in range(ITEMS)]
        lists = recommend_many(served, histories, 10, Exploration(1.0), np.random.default_rng(0))
        return {served.model.items[c] for ranked in lists for c in ranked.columns}

    full = run("full", worker_settings)
    assert store.item_values(full, "item_retired")["i3"] == 1
    assert "i3" not in served_items(full) and "i4" in served_items(full)
    # An empty Items dataset: what the worker reads once compaction has removed the
    # tombstone and the row before it.
    compacted = worker_settings.model_copy(update={"items_dataset_topic": "{group}.items.empty"})
    ensure_topics(settings.kafka_config(), [TopicSpec(compacted.topics.items_dataset, 1)])
    update = run("update", compacted)
    assert store.item_values(update, "item_retired")["i3"] == 1
    assert "i3" not in served_items(update)
