"""Serving latency and freshness: Redis lookups, GetRecommendations, lists after an event.

    python bench/serve.py [--items 100000] [--users 100000] [--rate 500] [--seconds 20]
                          [--event-rate 2000] [--freshness-seconds 10] [--warm-up-seconds 20]
                          [--sweep 10000,100000,1000000] [--sweep-requests 200]
    python bench/serve.py --intake [--intake-rate 1000] [--seconds 20]
    python bench/serve.py --catalogue 5000000 [--sweep-requests 200]

Measures, with a catalogue of --items items and --users users, each with a history and a
precomputed list:
- p50/p99 of a Redis lookup of a precomputed list (GET + JSON parse) at a steady --rate
  requests/s from a second process (bench/serve_load.py);
- p50/p99 of POST /recommendations on a `streamrec api` process at the same load, without and
  with a filter (a parameterised Items filter chained with an Interactions one), and errors;
- freshness: a `streamrec connector` process takes --event-rate events/s to users with lists;
  after --warm-up-seconds (20) of them, for probe events (one in ten, each to a user who
  gets no other event, on the item at the top of that user's list) the time from producing
  it to a reader seeing the user's list rewritten after the produce time and without that
  item (seen items are excluded, so a list that still holds it does not reflect the event);
- the catalogue-size sweep: p50/p99 of one GetRecommendations at a time over HTTP, for a
  model of each --sweep size (its own dataset group and `streamrec api` process), served as
  configured (the item index from STREAMREC_SERVING_INDEX_MIN_ITEMS items) and again by
  brute force (every item scored), which says from which size brute force misses 20 ms.

With --intake, only PutEvents over HTTP is measured, beside a direct Kafka producer
(bench/intake.py). With --catalogue, only the given catalogue sizes: for each, the seconds a
`streamrec api` process takes to load the version and build its item index, its memory once
ready and at its peak, and p50/p99 of one GetRecommendations at a time.

Set-up, and the path each part takes: the model version has random weights of the shapes a
trained one has (Hyperparameters() defaults) and is published with ModelStore; item metadata
goes through the connector's items processor (validation, the Items dataset topic, the Redis
hashes); histories through the connector's event processor (EventProcessor.process, as
bench/ingest.py's bare consumer: validation, dedup, the Interactions topic, the apply script),
with lists off; then every user's list through ListRefresher.refresh in chunks. The sweep
groups' few histories are written directly in the connector's member format.

Starts a local Kafka broker and redis-server unless STREAMREC_KAFKA_BOOTSTRAP and
STREAMREC_REDIS_URL are set. Prints a table; the last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import intake
from bench.api_calls import call
from bench.ingest import connector_env, prepare
from bench.serve_load import user_id
from bench.services import services
from connector import logs
from connector.devservices.process import free_port
from connector.filters.store import open_filters
from connector.kafka_produce import produce
from connector.keys import Keys, Subject
from connector.model.model import Hyperparameters, Model
from connector.records import SourceRecord
from connector.serving.current_model import ModelHolder
from connector.serving.list_refresh import ListRefresher
from connector.serving.lists_setup import history_reader, list_policy
from connector.settings import ConnectorSettings
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore
from connector.trackers import open_trackers
from connector.wiring import event_processor, processors

TYPES = ("click", "watch", "purchase")
GENRES = ("drama", "comedy", "action", "horror", "documentary", "kids", "romance", "sci-fi")
DEVICES = ("phone", "tv", "web")
HISTORY_EVENTS = 5  # per user, in one PutEvents record
RECORDS_PER_BATCH = 1000  # records handed to a processor at once, as a connector batch
FILTER_NAME = "bench-genres"
FILTER = (
    "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | EXCLUDE ItemID WHERE "
    'Interactions.EVENT_TYPE IN ("purchase")'
)
FILTER_VALUES = {"GENRES": '"drama","comedy","action"'}
# Freshness: events sent at the full rate before the first probe. A broker started by the
# benchmark JIT-compiles its fetch and transaction paths under this load (its C2 compiler
# took 1.3 s of CPU in 3.4 s measured at the start), and on two cores the connector's
# batches took 0.3-1.0 s, not 40-60 ms, for about 10 s; the backlog that built then took
# several more seconds to drain. 20 s measures the steady state a running deployment is in.
WARM_UP_SECONDS = 20.0
PATIENCE_SECONDS = 600.0  # freshness: how long after the last event a probe may still land
WEB_PORTS: dict[int, int] = {}  # connector process id -> its /metrics port
TARGETS = {"redis": 1.0, "api": 20.0, "freshness": 500.0}
# Seconds from starting each API process to its first 200 on /readyz (model loaded, index
# built), by port.
API_READY_SECONDS: dict[int, float] = {}
API_PIDS: dict[
    int, int
] = {}  # port -> pid of each `streamrec api` process started  # p99 targets of issue 5, ms


def count_list(text: str) -> list[int]:
    """A comma-separated list of counts, as --refresh-processes and --api-threads take."""
    return [int(n) for n in text.split(",")]


def item_id(index: int) -> str:
    """The id of catalogue item number `index`."""
    return f"item-{index}"


def random_version(items: int, seed: int) -> Any:
    """ModelArtifacts of a model of `items` items with random weights of the right shapes,
    item popularity (skewed) and creation times (the last 90 days), ready to publish."""
    rng = np.random.default_rng(seed)
    hyper = Hyperparameters()
    hidden = hyper.hidden_dimension
    limit = 1.0 / np.sqrt(hidden)
    embeddings = rng.normal(0.0, 0.1, (items + 1, hidden)).astype(np.float32)
    embeddings[0] = 0.0
    bias = rng.normal(0.0, 0.5, items + 1).astype(np.float32)
    bias[0] = 0.0
    params = {
        "item_embeddings": embeddings,
        "item_bias": bias,
        "type_embeddings": rng.normal(0.0, 0.01, (len(TYPES) + 1, hidden)).astype(np.float32),
        "gru_w": rng.uniform(-limit, limit, (hidden, 3 * hidden)).astype(np.float32),
        "gru_u": rng.uniform(-limit, limit, (hidden, 3 * hidden)).astype(np.float32),
        "gru_b": np.zeros(3 * hidden, np.float32),
        "out_w": np.eye(hidden, dtype=np.float32),
        "out_b": np.zeros(hidden, np.float32),
        "context_DEVICE": rng.normal(0.0, 0.01, (len(DEVICES) + 1, hidden)).astype(np.float32),
    }
    now = int(time.time())
    model = Model(
        items=[item_id(i) for i in range(items)],
        event_types=["", *TYPES],
        context_values={"DEVICE": ["", *DEVICES]},
        params=params,
        hyperparameters=hyper,
        meta={"data": {"first_timestamp": now - 90 * 86_400, "last_timestamp": now}},
    )
    arrays = {
        "item_popularity": rng.pareto(1.2, items).astype(np.float32),
        "item_created": rng.integers(now - 90 * 86_400, now, items, dtype=np.int64),
    }
    return model.to_artifacts(arrays)


def publish_version(settings: ConnectorSettings, items: int, seed: int) -> float:
    """Publish a random version of `items` items as the group's current one; seconds taken."""
    started = time.perf_counter()
    client = redis.Redis.from_url(settings.redis_url)
    ModelStore(client, Keys(settings.dataset_group)).publish(random_version(items, seed), keep=2)
    return time.perf_counter() - started


def put_items(settings: ConnectorSettings, items: int) -> float:
    """Item metadata for every item through the connector's items processor; seconds."""
    started = time.perf_counter()
    processor = processors(settings.model_copy(update={"lists_enabled": False})).items
    rng = random.Random(3)
    now = int(time.time())
    records: list[SourceRecord] = []
    for start in range(0, items, 10):
        entries = [
            {
                "itemId": item_id(i),
                "properties": {
                    "creationTimestamp": now - rng.randrange(90 * 86_400),
                    "title": f"Title {i}",
                    "genres": "|".join(rng.sample(GENRES, rng.randint(1, 2))),
                },
            }
            for i in range(start, min(items, start + 10))
        ]
        value = orjson.dumps({"items": entries})
        records.append(SourceRecord(settings.topics.items, 0, len(records), None, value))
    for start in range(0, len(records), RECORDS_PER_BATCH):
        report = processor.process(records[start : start + RECORDS_PER_BATCH])
        assert report.dead == 0, f"item records dead-lettered: {report}"
    return time.perf_counter() - started


def history_items(rng: random.Random, items: int) -> list[str]:
    """HISTORY_EVENTS items a user interacted with: skewed toward popular ones."""
    return [item_id(int(rng.paretovariate(1.1) * 20) % items) for _ in range(HISTORY_EVENTS)]


def put_histories(settings: ConnectorSettings, users: int, items: int) -> float:
    """HISTORY_EVENTS events per user through the connector's event processor (lists off, so
    this is the history path alone); seconds."""
    started = time.perf_counter()
    processor = event_processor(settings.model_copy(update={"lists_enabled": False}))
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    assert tracker is not None
    rng = random.Random(5)
    sent_at = int(time.time()) - 3600
    batch: list[SourceRecord] = []
    for index in range(users):
        user = user_id(index)
        events = [
            {
                "eventId": f"h-{index}-{n}",
                "eventType": rng.choice(("click", "click", "watch", "purchase")),
                "itemId": item,
                "sentAt": sent_at + n,
                "properties": {"device": rng.choice(DEVICES)},
            }
            for n, item in enumerate(history_items(rng, items))
        ]
        record = {
            "trackingId": tracker.tracking_id,
            "userId": user,
            "sessionId": f"s-{user}",
            "eventList": events,
        }
        batch.append(
            SourceRecord(settings.topics.events, 0, index, user.encode(), orjson.dumps(record))
        )
        if len(batch) == RECORDS_PER_BATCH or index == users - 1:
            report = processor.process(batch)
            assert report.dead == 0, f"history events dead-lettered: {report}"
            batch = []
        if (index + 1) % 20_000 == 0:
            print(f"  histories: {index + 1:,} users", flush=True)
    return time.perf_counter() - started


def write_histories_direct(settings: ConnectorSettings, users: int, items: int) -> None:
    """Histories written with one pipeline in the connector's member format (plan.py's
    history_member), for the sweep groups, where only a few users are needed."""
    client, keys = redis.Redis.from_url(settings.redis_url), Keys(settings.dataset_group)
    rng = random.Random(5)
    sent_at = int(time.time()) - 3600
    pipe = client.pipeline(transaction=False)
    for index in range(users):
        members = {}
        for n, item in enumerate(history_items(rng, items)):
            entry = {
                "item": item,
                "type": "click",
                "value": None,
                "ts": sent_at + n,
                "context": {"DEVICE": rng.choice(DEVICES)},
                "impression": None,
            }
            members[orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()] = sent_at + n
        pipe.zadd(keys.history(Subject("u", user_id(index))), members)
    pipe.execute()


def refresh_lists(settings: ConnectorSettings, users: int) -> float:
    """Every user's precomputed list through ListRefresher.refresh, 500 users a call; s."""
    started = time.perf_counter()
    client, keys = redis.Redis.from_url(settings.redis_url), Keys(settings.dataset_group)
    holder = ModelHolder(ModelStore(client, keys), index_min_items=settings.serving_index_min_items)
    holder.reload()
    policy = replace(list_policy(settings), filter_name=None)
    lists = RecommendationLists(client, keys, settings.history_ttl_seconds)
    refresher = ListRefresher(client, keys, holder, lists, policy, history_reader(settings, client))
    for start in range(0, users, policy.chunk):
        chunk = range(start, min(users, start + policy.chunk))
        refresher.refresh(Subject("u", user_id(index)) for index in chunk)
        if (start + policy.chunk) % 10_000 == 0:
            print(f"  lists: {start + policy.chunk:,} users", flush=True)
    return time.perf_counter() - started


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in the values' unit, rounded."""
    if len(values) < 2:
        return (round(values[0], 2), round(values[0], 2)) if values else (0.0, 0.0)
    return round(statistics.median(values), 2), round(statistics.quantiles(values, n=100)[98], 2)


# Load from a second process


def run_load(
    mode: str,
    url: str,
    group: str,
    users: int,
    rate: int,
    seconds: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """bench/serve_load.py in its own process; its JSON result."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("serve_load.py")),
        mode,
        url,
        group,
        str(users),
        str(rate),
        str(seconds),
    ]
    if extra is not None:
        command.append(json.dumps(extra))
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds * 10 + 120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# The HTTP API


@contextlib.contextmanager
def running_api(settings: ConnectorSettings, threads: int | None = None) -> Iterator[int]:
    """A `streamrec api` process for the settings' group on a free port, ready; its port.
    `threads` sets STREAMREC_API_THREADS (None: the process's default)."""
    port = free_port()
    env = {
        **connector_env(settings),
        **({"STREAMREC_API_THREADS": str(threads)} if threads is not None else {}),
        "STREAMREC_API_PORT": str(port),
        "STREAMREC_API_HOST": "127.0.0.1",
        "STREAMREC_SERVING_INDEX_MIN_ITEMS": str(settings.serving_index_min_items),
    }
    child = subprocess.Popen(
        ["streamrec", "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    API_PIDS[port] = child.pid
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 900
        while call(port, "GET", "/readyz")[0] != 200:
            if child.poll() is not None:
                raise RuntimeError(f"streamrec api exited: {child.stderr.read()[-2000:]!r}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise TimeoutError("streamrec api did not become ready")
            time.sleep(0.2)
        API_READY_SECONDS[port] = time.monotonic() - started
        yield port
    finally:
        child.terminate()
        child.wait(60)


def sequential_latencies(port: int, users: int, requests: int) -> tuple[list[float], int]:
    """One GetRecommendations at a time on one keep-alive connection: (latencies ms, errors)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = random.Random(13)
    latencies, errors = [], 0
    headers = {"Content-Type": "application/json"}
    for n in range(requests + 10):  # the first 10 warm the process up and are not counted
        body = orjson.dumps({"userId": user_id(rng.randrange(users))})
        started = time.perf_counter()
        connection.request("POST", "/recommendations", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            errors += 1
        elif n >= 10:
            latencies.append(elapsed)
    connection.close()
    return latencies, errors


def measure_api(
    settings: ConnectorSettings, users: int, rate: int, seconds: float, threads: int
) -> dict[str, Any]:
    """GetRecommendations at `rate` requests/s, without and with the filter, from an API
    process with `threads` threads."""
    with running_api(settings, threads) as port:
        url = f"http://127.0.0.1:{port}/recommendations"
        filtered = {"filterName": FILTER_NAME, "filterValues": FILTER_VALUES}
        first_filtered = filtered_warm_up(port, filtered)
        before = answer_sources(port)
        plain = run_load("http", url, settings.dataset_group, users, rate, seconds, {})
        between = answer_sources(port)
        with_filter = run_load("http", url, settings.dataset_group, users, rate, seconds, filtered)
        after = answer_sources(port)
    plain["sources"] = {k: between[k] - before.get(k, 0) for k in between}
    with_filter["sources"] = {k: after[k] - between.get(k, 0) for k in after}
    return {"plain": plain, "filter": with_filter, "first_filtered": first_filtered}


def answer_sources(port: int) -> dict[str, int]:
    """GetRecommendations answered so far by source ("precomputed" list or "ranked"), from
    the API's own Prometheus counter."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    pattern = r'^streamrec_api_recommendations_total\{source="(\w+)"\} ([0-9.e+]+)$'
    found = re.findall(pattern, text, re.MULTILINE)
    counts = {source: int(float(value)) for source, value in found}
    return {source: counts.get(source, 0) for source in ("precomputed", "ranked")}


def filtered_warm_up(port: int, filtered: dict[str, Any]) -> str:
    """Send filtered requests until one succeeds: the first of a model version builds the
    item metadata table. What happened, for the table: statuses and seconds until a 200."""
    started, statuses = time.perf_counter(), []
    while time.perf_counter() - started < 300:
        status, body = call(port, "POST", "/recommendations", {"userId": user_id(0), **filtered})
        statuses.append(status)
        if status == 200:
            return f"{statuses} in {time.perf_counter() - started:.1f} s"
        time.sleep(0.5)
    raise TimeoutError(f"no filtered request succeeded in 300 s: {statuses}, last {body}")


Swept = dict[int, tuple[float, float, int]]


def sweep(
    base: ConnectorSettings, run_id: str, sizes: Sequence[int], requests: int
) -> tuple[Swept, Swept]:
    """For each catalogue size, (p50, p99, errors) of one GetRecommendations at a time:
    served as configured (the item index from STREAMREC_SERVING_INDEX_MIN_ITEMS), and by
    brute force (every item scored), one API process after the other on the same data."""
    served: Swept = {}
    brute: Swept = {}
    users = 1000
    for size in sizes:
        settings = base.model_copy(update={"dataset_group": f"benchsweep{size}-{run_id}"})
        seconds = publish_version(settings, size, seed=size)
        write_histories_direct(settings, users, size)
        print(f"sweep: published {size:,} items in {seconds:.1f} s", flush=True)
        exhaustive = settings.model_copy(update={"serving_index_min_items": size + 1})
        for figures, variant, name in ((served, settings, "served"), (brute, exhaustive, "brute")):
            with running_api(variant) as port:
                latencies, errors = sequential_latencies(port, users, requests)
            figures[size] = (*percentiles(latencies), errors)
            p50, p99 = figures[size][:2]
            print(f"sweep: {size:,} items, {name}: p50 {p50} ms p99 {p99} ms", flush=True)
        _forget(settings)  # a 1M-item version is ~270 MB of Redis memory
    return served, brute


def catalogue(
    base: ConnectorSettings, run_id: str, sizes: Sequence[int], requests: int
) -> dict[str, Any]:
    """For each catalogue size: publish seconds, then one `streamrec api` process serving it
    with the item index: seconds until ready (the version loaded and the index built), its
    resident memory once ready and its peak after the requests, and p50/p99 of one
    GetRecommendations at a time."""
    rows = []
    users = 1000
    for size in sizes:
        settings = base.model_copy(
            update={"dataset_group": f"benchcat{size}-{run_id}", "serving_index_min_items": 1}
        )
        publish_s = publish_version(settings, size, seed=size)
        write_histories_direct(settings, users, size)
        print(f"catalogue: published {size:,} items in {publish_s:.1f} s", flush=True)
        with running_api(settings) as port:
            ready_rss = _memory_mb(API_PIDS[port], "VmRSS")
            latencies, errors = sequential_latencies(port, users, requests)
            peak = _memory_mb(API_PIDS[port], "VmHWM")
        p50, p99 = percentiles(latencies)
        rows.append(
            {
                "items": size,
                "publish_s": round(publish_s, 1),
                "load_s": round(API_READY_SECONDS[port], 1),
                "rss_mb_ready": ready_rss,
                "rss_mb_peak": peak,
                "p50_ms": p50,
                "p99_ms": p99,
                "errors": errors,
            }
        )
        print(f"catalogue: {rows[-1]}", flush=True)
        _forget(settings)
    return {"catalogue": rows}


def _memory_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/<pid>/status (VmRSS now, VmHWM the peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for process {pid}")


def print_catalogue(figures: dict[str, Any]) -> None:
    print(
        "\ncatalogue sizes, one `streamrec api` process with the item index, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"  {'items':>10}  {'publish s':>9}  {'load s':>6}  {'RSS ready MiB':>13}  "
        f"{'RSS peak MiB':>12}  {'p50 ms':>7}  {'p99 ms':>7}  {'errors':>6}"
    )
    for row in figures["catalogue"]:
        print(
            f"  {row['items']:>10,}  {row['publish_s']:>9}  {row['load_s']:>6}  "
            f"{row['rss_mb_ready']:>13}  {row['rss_mb_peak']:>12}  {row['p50_ms']:>7}  "
            f"{row['p99_ms']:>7}  {row['errors']:>6}"
        )


def _forget(settings: ConnectorSettings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    found = list(client.scan_iter(match=f"{Keys(settings.dataset_group).base}*", count=10_000))
    for start in range(0, len(found), 10_000):
        client.unlink(*found[start : start + 10_000])


# Freshness


class Probes:
    """Probe events in flight, and a thread that sees their users' lists being rewritten.

    The thread learns of a rewrite from Redis keyspace notifications on the probe users'
    list keys and then reads that one list, so it costs the measured system little and
    times a rewrite to within a pub/sub delivery. It first polled every pending list every
    2 ms instead, and the benchmark process then took 58-75% of a core during the freshness
    phase (5-8% with notifications; `top`, 2026-12-02): CPU the connector needs on two
    cores. Where the server refuses CONFIG SET, it falls back to polling every 20 ms."""

    POLL_SECONDS = 0.02  # the fallback's interval: the figure's resolution in that case

    def __init__(self, client: redis.Redis, keys: Keys, users: Sequence[str]) -> None:
        self._client, self._keys = client, keys
        self._pending: dict[str, tuple[str, float, int]] = {}  # user -> (item, sent, sent ms)
        self._lock = threading.Lock()
        self.latencies: list[float] = []
        self.stale_rewrites = 0  # list rewritten after the produce but still holding the item
        self._stop = threading.Event()
        db = client.connection_pool.connection_kwargs.get("db", 0)
        self._user_of = {  # keyspace notification channel -> user
            f"__keyspace@{db}__:{keys.recommendations(Subject('u', u))}".encode(): u for u in users
        }
        self._pubsub = _subscribed(client, list(self._user_of))
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sent(self, user: str, item: str) -> None:
        with self._lock:
            self._pending[user] = (item, time.perf_counter(), int(time.time() * 1000))

    def wait(self, patience: float, children: Sequence[subprocess.Popen[bytes]]) -> int:
        """Wait up to `patience` s for every probe (while the connector runs); how many
        never showed."""
        deadline = time.monotonic() + patience
        while self.pending() and time.monotonic() < deadline:
            check_alive(children)
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(10)
        if self._pubsub is not None:
            self._pubsub.close()
        return self.pending()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self._pubsub is None:
                with self._lock:
                    users = list(self._pending)
                time.sleep(self.POLL_SECONDS)
            else:
                message = self._pubsub.get_message(timeout=0.1)
                if message is None or message["type"] != "message":
                    continue
                users = [self._user_of[message["channel"]]]
            self._check(users)

    def _check(self, users: list[str]) -> None:
        with self._lock:
            probes = [(user, self._pending[user]) for user in users if user in self._pending]
        if not probes:
            return
        pipe = self._client.pipeline(transaction=False)
        for user, _ in probes:
            pipe.get(self._keys.recommendations(Subject("u", user)))
        replies = pipe.execute()
        now = time.perf_counter()
        for (user, (item, sent, sent_ms)), raw in zip(probes, replies, strict=True):
            if raw is None:
                continue
            document = orjson.loads(raw)
            if document["updated"] < sent_ms:
                continue
            if any(entry["itemId"] == item for entry in document["itemList"]):
                self.stale_rewrites += 1
                continue
            self.latencies.append((now - sent) * 1000)
            with self._lock:
                self._pending.pop(user, None)


def _subscribed(client: redis.Redis, channels: Sequence[bytes]) -> Any:
    """A pub/sub connection subscribed to keyspace notification `channels`, or None when
    the server does not let notifications be switched on."""
    try:
        flags = str(client.config_get("notify-keyspace-events").get("notify-keyspace-events"))
        client.config_set("notify-keyspace-events", "".join(sorted(set(flags) | set("K$"))))
    except redis.ResponseError:
        return None
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    for start in range(0, len(channels), 1000):
        pubsub.subscribe(*channels[start : start + 1000])
    return pubsub


@contextlib.contextmanager
def running_connectors(
    settings: ConnectorSettings, replicas: int, env: dict[str, str]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`replicas` `streamrec connector` processes of the settings' group (one consumer
    group: the event topic's partitions are shared out between them), each one's stderr
    kept in a file so that a connector that dies is reported with its reason instead of
    waited for."""
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(_running_connector(settings, env)) for _ in range(replicas)]
        _wait_for_members(settings, replicas, children)
        yield children


@contextlib.contextmanager
def _running_connector(
    settings: ConnectorSettings, extra_env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryFile() as errors:
        env = {**connector_env(settings), **extra_env}
        child = subprocess.Popen(
            ["streamrec", "connector"], env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        WEB_PORTS[child.pid] = int(env["STREAMREC_CONNECTOR_WEB_PORT"])
        try:
            yield child
        finally:
            code = child.poll()
            if code is None:
                child.terminate()
                child.wait(60)
            elif code != 0:
                errors.seek(0)
                tail = errors.read()[-3000:].decode(errors="replace")
                print(f"streamrec connector exited with {code}:\n{tail}", file=sys.stderr)


def _wait_for_members(
    settings: ConnectorSettings, replicas: int, children: list[subprocess.Popen[bytes]]
) -> None:
    """Wait until the consumer group is stable with every replica holding partitions, so
    that no rebalance falls inside a measurement."""
    admin = AdminClient(settings.kafka_config())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        check_alive(children)
        described = admin.describe_consumer_groups([settings.consumer_group])
        group = described[settings.consumer_group].result(30)
        holding = [m for m in group.members if m.assignment.topic_partitions]
        if str(group.state).endswith("STABLE") and len(holding) == replicas:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the {replicas} connectors did not all get partitions within 300 s")


def batch_stages(children: Sequence[subprocess.Popen[bytes]]) -> dict[str, float]:
    """Over every connector, from its /metrics so far: "batches", "records", and the
    seconds of each event-batch stage summed (streamrec_batch_stage_seconds), by stage."""
    totals: dict[str, float] = {}
    counts = {"streamrec_batch_seconds_count": "batches", "streamrec_records_total": "records"}
    stage = re.compile(r'^streamrec_batch_stage_seconds_sum\{stage="([^"]+)"\} (\S+)$')
    for child in children:
        url = f"http://127.0.0.1:{WEB_PORTS[child.pid]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            for line in reply.read().decode().splitlines():
                name, _, value = line.rpartition(" ")
                key = counts.get(name.split("{")[0])
                found = stage.match(line)
                if found:
                    key, value = found.groups()
                if key is not None:
                    totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def check_alive(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Fail now if a connector process has exited."""
    for child in children:
        if child.poll() is not None:
            raise RuntimeError(f"streamrec connector exited with {child.returncode}")


class Sender:
    """Produces single-event PutEvents records for the benchmark's group."""

    def __init__(self, settings: ConnectorSettings) -> None:
        tracker = open_trackers(settings).of_group(settings.dataset_group)
        assert tracker is not None
        self._tracking, self._topic = tracker.tracking_id, settings.topics.events
        self._producer = Producer({**settings.kafka_config(), "linger.ms": 0})

    def send(self, user: str, item: str, event_id: str) -> None:
        event = {"eventId": event_id, "eventType": "click", "itemId": item}
        event["sentAt"] = int(time.time())
        record = {
            "trackingId": self._tracking,
            "userId": user,
            "sessionId": f"s-{user}",
            "eventList": [event],
        }
        produce(self._producer, self._topic, orjson.dumps(record), user.encode())
        self._producer.poll(0)

    def flush(self) -> None:
        self._producer.flush(30)


def connector_ready(
    settings: ConnectorSettings,
    sender: Sender,
    user: str,
    children: Sequence[subprocess.Popen[bytes]],
) -> float:
    """Seconds until a just-started connector has written `user`'s list after an event."""
    started = time.perf_counter()
    client, keys = redis.Redis.from_url(settings.redis_url), Keys(settings.dataset_group)
    watcher = Probes(client, keys, [user])
    watcher.start()
    watcher.sent(user, item_id(0))
    sender.send(user, item_id(0), "ready")
    sender.flush()
    if watcher.wait(900, children) or not watcher.latencies:
        raise TimeoutError("the connector did not write a list within 900 s")
    return time.perf_counter() - started


def measure_freshness(
    settings: ConnectorSettings,
    sender: Sender,
    args: argparse.Namespace,
    children: Sequence[subprocess.Popen[bytes]],
    phase: int = 0,
) -> dict[str, Any]:
    """Produce-to-list-reflects-it latency of probe events at --event-rate events/s, sent to
    a running connector; `phase` tells the event ids of one call from another's (a repeated
    id would be dropped as a duplicate)."""
    rate, seconds = args.event_rate, args.freshness_seconds
    probes_needed = int(rate * seconds / 10) + 1
    assert args.users > probes_needed * 2, "--users too small for this many probes"
    probe_users = [user_id(args.users - 1 - n) for n in range(probes_needed)]  # no other events
    traffic_users = args.users - probes_needed
    client, keys = redis.Redis.from_url(settings.redis_url), Keys(settings.dataset_group)
    pipe = client.pipeline(transaction=False)
    for user in probe_users:
        pipe.get(keys.recommendations(Subject("u", user)))
    top = {
        u: orjson.loads(raw)["itemList"][0]["itemId"]
        for u, raw in zip(probe_users, pipe.execute(), strict=True)
    }
    watcher = Probes(client, keys, probe_users)
    watcher.start()
    rng = random.Random(17)
    warm = int(rate * args.warm_up_seconds)
    total = warm + int(rate * seconds)
    start = time.perf_counter()
    for n in range(total):
        if n % 20 == 0:  # bursts of 20: every 10 ms at 2,000/s, little CPU spent pacing
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
        if n >= warm and n % 10 == 0 and probe_users:
            user = probe_users.pop()
            watcher.sent(user, top[user])
            sender.send(user, top[user], f"p{phase}-{n}")
        else:
            traffic = user_id(rng.randrange(traffic_users))
            sender.send(traffic, item_id(rng.randrange(args.items)), f"t{phase}-{n}")
    sender.flush()
    produced_s = time.perf_counter() - start
    check_alive(children)
    missed = watcher.wait(PATIENCE_SECONDS, children)
    return {
        "latencies": watcher.latencies,
        "missed": missed,
        "stale_rewrites": watcher.stale_rewrites,
        "achieved_rate": total / produced_s,
    }


# The run


def main() -> None:
    logs.configure(verbose=False)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500, help="lookups and API requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="per load measurement")
    parser.add_argument("--event-rate", type=int, default=2_000)
    parser.add_argument("--freshness-seconds", type=float, default=10.0)
    parser.add_argument(
        "--warm-up-seconds",
        type=float,
        default=WARM_UP_SECONDS,
        help="freshness: seconds of events at the full rate before the first probe",
    )
    parser.add_argument(
        "--connectors", type=int, default=1, help="connector replicas for the freshness phase"
    )
    parser.add_argument(
        "--refresh-processes",
        type=count_list,
        default=[1],
        help="list refresh processes per connector (STREAMREC_LISTS_REFRESH_PROCESSES); "
        "several, comma-separated, run the freshness phase once each, side by side, with "
        "the first one's figures as the headline",
    )
    parser.add_argument(
        "--api-threads",
        type=count_list,
        default=[0],
        help="threads of the API process (STREAMREC_API_THREADS); several, comma-separated, "
        "run the API phase once each, side by side, with the first one's figures as the "
        "headline",
    )
    parser.add_argument("--sweep", default="10000,100000,1000000")
    parser.add_argument("--sweep-requests", type=int, default=200)
    parser.add_argument(
        "--catalogue",
        help="only measure these catalogue sizes (e.g. 5000000): model load time, memory of "
        "the serving process and GetRecommendations p50/p99 with the item index",
    )
    parser.add_argument(
        "--intake",
        action="store_true",
        help="measure only PutEvents over HTTP beside a direct producer (bench/intake.py)",
    )
    parser.add_argument("--intake-rate", type=int, default=1000, help="--intake: requests/s")
    args = parser.parse_args()
    started = time.perf_counter()
    with services() as (kafka, redis_url):
        base = ConnectorSettings(kafka_bootstrap=kafka, redis_url=redis_url)
        if args.catalogue:
            sizes = [int(size) for size in args.catalogue.split(",")]
            found = catalogue(base, uuid.uuid4().hex[:6], sizes, args.sweep_requests)
            print_catalogue(found)
            print(json.dumps(found))
            return
        if args.intake:
            intake_figures = intake.measure_intake(
                base, uuid.uuid4().hex[:6], args, sys.modules[__name__]
            )
            intake.print_intake(intake_figures, args)
            print(json.dumps({"intake": intake_figures}))
            return
        figures, setup = measure(base, uuid.uuid4().hex[:6], args)
    setup["total_s"] = round(time.perf_counter() - started, 1)
    print_table(figures, setup, args)
    print(json.dumps(figures))


def measure(
    base: ConnectorSettings, run_id: str, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = prepare(base, f"benchserve-{run_id}")
    setup: dict[str, Any] = {}
    setup["publish_s"] = publish_version(settings, args.items, seed=1)
    print(f"published a model of {args.items:,} items in {setup['publish_s']:.1f} s", flush=True)
    setup["items_s"] = put_items(settings, args.items)
    print(f"item metadata for {args.items:,} items in {setup['items_s']:.1f} s", flush=True)
    setup["histories_s"] = put_histories(settings, args.users, args.items)
    print(f"histories of {args.users:,} users in {setup['histories_s']:.1f} s", flush=True)
    # The connector starts before the lists exist: one that starts with N active lists first
    # refreshes all of them (lists_setup.list_refresher), which is what "lists" below times.
    sender = Sender(settings)
    runs: list[tuple[int, dict[str, Any]]] = []
    for processes in args.refresh_processes:
        env = {"STREAMREC_LISTS_REFRESH_PROCESSES": str(processes)}
        with running_connectors(settings, args.connectors, env) as children:
            if not runs:
                lists_set_up(settings, sender, args, children, setup)
            check_alive(children)
            before = batch_stages(children)
            run = measure_freshness(settings, sender, args, children, len(runs))
            after = batch_stages(children)
        run["batches"] = {k: round(v - before.get(k, 0), 3) for k, v in after.items()}
        runs.append((processes, run))
        print(
            f"freshness with {processes} refresh processes: p50/p99 "
            f"{percentiles(run['latencies'])} ms; connector batches {run['batches']}",
            flush=True,
        )
    fresh = runs[0][1]
    setup["batches"] = fresh["batches"]
    setup["freshness_by_processes"] = [
        (processes, percentiles(run["latencies"])) for processes, run in runs
    ]
    setup.update({k: fresh[k] for k in ("stale_rewrites", "achieved_rate")})
    print(f"freshness: p50/p99 {percentiles(fresh['latencies'])} ms", flush=True)
    open_filters(settings).create(FILTER_NAME, FILTER)
    before = _get_stats(settings)
    redis_run = run_load(
        "redis", settings.redis_url, settings.dataset_group, args.users, args.rate, args.seconds
    )
    calls, usec = (after - was for after, was in zip(_get_stats(settings), before, strict=True))
    setup["redis_server_us_per_get"] = round(usec / max(calls, 1), 1)
    print(f"redis lookups: p50/p99 {percentiles(redis_run['latencies_ms'])} ms", flush=True)
    by_threads: list[tuple[int, dict[str, Any]]] = []
    for threads in args.api_threads:
        run = measure_api(settings, args.users, args.rate, args.seconds, threads)
        by_threads.append((threads, run))
        print(
            f"api with {threads} threads: p50/p99 {percentiles(run['plain']['latencies_ms'])} "
            f"ms, filtered {percentiles(run['filter']['latencies_ms'])} ms",
            flush=True,
        )
    api = by_threads[0][1]
    setup["first_filtered"] = api["first_filtered"]
    setup["api_by_threads"] = [
        (
            threads,
            percentiles(run["plain"]["latencies_ms"]),
            percentiles(run["filter"]["latencies_ms"]),
        )
        for threads, run in by_threads
    ]
    sizes = [int(size) for size in args.sweep.split(",") if size]
    swept, brute = sweep(base, run_id, sizes, args.sweep_requests)
    setup["index_min_items"] = base.serving_index_min_items
    return figures_of(redis_run, api, fresh, (swept, brute), setup), setup


def lists_set_up(
    settings: ConnectorSettings,
    sender: Sender,
    args: argparse.Namespace,
    children: Sequence[subprocess.Popen[bytes]],
    setup: dict[str, Any],
) -> None:
    """Wait for the just-started connectors to write a list, then write every user's."""
    setup["ready_s"] = connector_ready(settings, sender, user_id(args.users), children)
    print(f"connector wrote its first list {setup['ready_s']:.1f} s after start", flush=True)
    setup["lists_s"] = refresh_lists(settings, args.users)
    print(f"lists of {args.users:,} users in {setup['lists_s']:.1f} s", flush=True)


def _get_stats(settings: ConnectorSettings) -> tuple[int, int]:
    """(calls, microseconds) Redis has spent on GET so far: its own side of a lookup."""
    stats = redis.Redis.from_url(settings.redis_url).info("commandstats").get("cmdstat_get", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def figures_of(
    redis_run: dict[str, Any],
    api: dict[str, Any],
    fresh: dict[str, Any],
    sweeps: tuple[Swept, Swept],
    setup: dict[str, Any],
) -> dict[str, Any]:
    swept, brute = sweeps
    redis_p50, redis_p99 = percentiles(redis_run["latencies_ms"])
    api_p50, api_p99 = percentiles(api["plain"]["latencies_ms"])
    filter_p50, filter_p99 = percentiles(api["filter"]["latencies_ms"])
    fresh_p50, fresh_p99 = percentiles(fresh["latencies"] + [float("inf")] * fresh["missed"])
    misses = [size for size, (_, p99, _) in sorted(brute.items()) if p99 >= TARGETS["api"]]
    return {
        "redis_p50_ms": redis_p50,
        "redis_p99_ms": redis_p99,
        "redis_errors": redis_run["errors"],
        "redis_server_us_per_get": setup["redis_server_us_per_get"],
        "redis_requests": len(redis_run["latencies_ms"]),
        "api_p50_ms": api_p50,
        "api_p99_ms": api_p99,
        "api_errors": api["plain"]["errors"],
        "api_requests": len(api["plain"]["latencies_ms"]),
        "api_filter_p50_ms": filter_p50,
        "api_filter_p99_ms": filter_p99,
        "api_filter_errors": api["filter"]["errors"],
        "api_answers_from_lists": api["plain"]["sources"]["precomputed"],
        "api_answers_ranked": api["plain"]["sources"]["ranked"],
        "api_filter_answers_ranked": api["filter"]["sources"]["ranked"],
        "api_max_lag_ms": max(api["plain"]["max_lag_ms"], api["filter"]["max_lag_ms"]),
        "api_p99_ms_by_threads": [  # in the order run: [threads, plain p99, filtered p99]
            [threads, plain[1], filtered[1]] for threads, plain, filtered in setup["api_by_threads"]
        ],
        "freshness_p50_ms": fresh_p50,
        "freshness_p99_ms": fresh_p99 if fresh_p99 != float("inf") else None,
        "freshness_probes": len(fresh["latencies"]),
        "freshness_missed": fresh["missed"],
        "freshness_p99_ms_by_refresh_processes": [  # in the order run
            [processes, p99] for processes, (_, p99) in setup["freshness_by_processes"]
        ],
        "freshness_batch_stages_s": setup["batches"],
        "connector_first_list_s": round(setup["ready_s"], 1),
        "api_p50_ms_by_items": {str(size): p50 for size, (p50, _, _) in swept.items()},
        "api_p99_ms_by_items": {str(size): p99 for size, (_, p99, _) in swept.items()},
        "brute_force_p50_ms_by_items": {str(size): p50 for size, (p50, _, _) in brute.items()},
        "brute_force_p99_ms_by_items": {str(size): p99 for size, (_, p99, _) in brute.items()},
        "index_min_items": setup["index_min_items"],
        "sweep_errors": sum(e for _, _, e in [*swept.values(), *brute.values()]),
        "brute_force_misses_from_items": misses[0] if misses else None,
    }


def print_table(figures: dict[str, Any], setup: dict[str, Any], args: argparse.Namespace) -> None:
    def row(name: str, p50: Any, p99: Any, target: str, note: str = "") -> str:
        return f"  {name:<44} {p50!s:>10} {p99!s:>10}  {target:<9} {note}"

    print(
        f"\nserving benchmark: {args.items:,} items, {args.users:,} users, "
        f"{os.cpu_count()} cores, {setup['total_s']:.0f} s in all"
    )
    print(
        f"  set-up: publish {setup['publish_s']:.1f} s, item metadata {setup['items_s']:.1f} s,"
        f" histories {setup['histories_s']:.1f} s, lists {setup['lists_s']:.1f} s"
    )
    print(row("", "p50 ms", "p99 ms", "p99 goal", "notes"))
    print(
        row(
            f"Redis GET + parse of a list, {args.rate}/s",
            figures["redis_p50_ms"],
            figures["redis_p99_ms"],
            "< 1",
            f"{figures['redis_errors']} errors; Redis's own time "
            f"{setup['redis_server_us_per_get']} us/GET",
        )
    )
    print(
        row(
            f"GetRecommendations HTTP, {args.rate}/s",
            figures["api_p50_ms"],
            figures["api_p99_ms"],
            "< 20",
            f"{figures['api_errors']} errors; {figures['api_answers_from_lists']} answered from "
            f"the precomputed list, {figures['api_answers_ranked']} ranked",
        )
    )
    print(
        row(
            f"  with filter {FILTER_NAME}",
            figures["api_filter_p50_ms"],
            figures["api_filter_p99_ms"],
            "< 20",
            f"{figures['api_filter_errors']} errors; first calls {setup['first_filtered']}",
        )
    )
    print(
        row(
            f"freshness at {args.event_rate}/s (achieved {setup['achieved_rate']:.0f}/s)",
            figures["freshness_p50_ms"],
            figures["freshness_p99_ms"],
            "< 500",
            f"{figures['freshness_probes']} probes, {figures['freshness_missed']} missed",
        )
    )
    print(
        "  connector start to its first list (no active lists yet): "
        f"{figures['connector_first_list_s']} s; lists rewritten still holding the probe item: "
        f"{setup['stale_rewrites']}"
    )
    for size, p99 in figures["api_p99_ms_by_items"].items():
        p50 = figures["api_p50_ms_by_items"][size]
        how = "index" if int(size) >= figures["index_min_items"] else "brute force"
        print(row(f"one GetRecommendations, {int(size):,} items ({how})", p50, p99, "< 20"))
        brute = (
            figures["brute_force_p50_ms_by_items"][size],
            figures["brute_force_p99_ms_by_items"][size],
        )
        print(row("  the same by brute force", *brute, "< 20"))
    misses = figures["brute_force_misses_from_items"]
    print(f"  brute-force scoring misses the 20 ms p99 from: {misses or 'no size measured'}")


if __name__ == "__main__":
    main()
