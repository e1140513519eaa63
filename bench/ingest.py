"""Ingest throughput and latency of the connector, beside a bare confluent-kafka consumer.

Measures, in one run on one machine:
- events/s end to end (first event visible in Redis to last) of one `streamrec connector`
  process, with one event per record and with ten (the PutEvents maximum);
- events/s of a bare confluent-kafka consumer that runs the same ingest code (parsing,
  validation, dedup, dataset append, Redis writes) on the same records, and the ratio;
- p50/p99 of produce-to-visible-in-Redis latency at a steady 2,000 events/s;
- with `--source mapped`: the same events as a web-analytics clickstream topic read through
  a source mapping (docs/sources.md), beside the PutEvents path with one event per record,
  each with the connector's CPU (its process tree, from /proc) per event while ingesting;
- the CPU µs per event of each part (connector with its children, Redis, broker, from /proc
  while the events go in) with one and with ten events per record, and Redis's time per
  event in each command (INFO commandstats);
- with `--connectors 1,2,4`: only events/s and CPU per event for each replica count of one
  consumer group over an events topic of `--partitions` (8) partitions.

    python bench/ingest.py [--events 200000] [--latency-seconds 20] [--source mapped]
                           [--source-only] [--connectors 1,2,4 [--partitions 8]]

Starts a local Kafka broker and redis-server unless STREAMREC_KAFKA_BOOTSTRAP and
STREAMREC_REDIS_URL are set. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import redis
from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import schemas
from bench.proc_stats import cpu_seconds, pid_listening_on, tree_cpu_seconds
from bench.services import services
from connector import logs
from connector.devservices.process import free_port
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.kafka_produce import produce
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.registry.registry import open_registry
from connector.settings import ConnectorSettings
from connector.sources.store import open_sources
from connector.trackers import open_trackers
from connector.wiring import ensure_group_topics, event_processor

TYPES = ("click", "watch", "purchase")
# The clickstream shape of --source mapped: what a web-analytics pipeline writes.
CLICKSTREAM_MAPPING = {
    "target": "events",
    "skip": [{"path": "event", "in": ["heartbeat"]}],
    "fields": {
        "userId": {"path": "visitor.account"},
        "sessionId": {"path": "visitor.session"},
        "eventId": {"path": "id"},
        "eventType": {"path": "event", "values": {"product_view": "click", "play": "watch"}},
        "itemId": {"path": "products[0].sku"},
        "sentAt": {"path": "timestamp_ms", "convert": "epoch_millis"},
        "eventValue": {"path": "products[0].price"},
        "impression": {"path": "shown"},
        "properties.device": {"path": "context.device", "convert": "lower"},
        "properties.location": {"path": "context.city"},
    },
}
NAMES = {"click": "product_view", "watch": "play", "purchase": "purchase"}
# The latency run first sends this long at the full rate without measuring, so that the
# figure is the steady state, not the connector's first rebalance or the broker's warm-up.
WARM_UP_SECONDS = 5.0


def synthetic_events(count: int, seed: int) -> Iterator[tuple[str, dict[str, object]]]:
    """(user, event) pairs shaped like real traffic: skewed items, impressions, context."""
    rng = random.Random(seed)
    for n in range(count):
        user = f"user-{int(rng.paretovariate(1.2) * 100) % 20_000}"
        items = [f"item-{int(rng.paretovariate(1.1) * 50) % 8_000}" for _ in range(10)]
        event: dict[str, object] = {
            "eventId": f"e{seed}-{n}",
            "eventType": rng.choice(TYPES),
            "itemId": items[0],
            "sentAt": 1_700_000_000 + n,
            "eventValue": round(rng.random() * 5, 2),
            "impression": items,
            "properties": {
                "device": rng.choice(("phone", "tv", "web")),
                "location": rng.choice(("Berlin", "Lagos", "Lima", "Osaka")),
            },
        }
        if n % 3 == 0:
            event["metricAttribution"] = {"eventAttributionSource": f"campaign-{n % 7}"}
        yield user, event


def prepare(base: ConnectorSettings, group: str, **overrides: object) -> ConnectorSettings:
    """A dataset group with schemas, topics and a tracker."""
    settings = base.model_copy(update={"dataset_group": group, **overrides})
    registry = open_registry(settings)
    for dataset, file in schemas.DATASET_FILES.items():
        registry.register(group, dataset, schemas.load(file))
    ensure_group_topics(settings)
    trackers = open_trackers(settings)
    if trackers.of_group(group) is None:
        trackers.create(group)
    return settings


def publish(settings: ConnectorSettings, events: int, per_record: int, seed: int) -> None:
    """Publish `events` events, `per_record` to a PutEvents record, keyed by user."""
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    assert tracker is not None
    producer = Producer({**settings.kafka_config(), "linger.ms": 20, "batch.size": 1_000_000})
    batch: list[dict[str, object]] = []
    for user, event in synthetic_events(events, seed):
        batch.append(event)
        if len(batch) == per_record:
            record = {
                "trackingId": tracker.tracking_id,
                "userId": user,
                "sessionId": f"s-{user}",
                "eventList": batch,
            }
            _produce(producer, settings.topics.events, user, json.dumps(record).encode())
            batch = []
    producer.flush(120)


def _produce(producer: Producer, topic: str, key: str, value: bytes) -> None:
    produce(producer, topic, value, key.encode())


def counted(client: redis.Redis, keys: Keys) -> int:
    """Events recorded in Redis so far (the ingest script's counters)."""
    buckets = client.zrange(keys.metric_buckets, 0, -1)
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hvals(keys.type_counts(int(bucket)))
    return sum(int(v) for values in pipe.execute() for v in values)


def time_until_counted(
    client: redis.Redis,
    keys: Keys,
    total: int,
    timeout: float,
    mark: Callable[[], None] = lambda: None,
) -> float:
    """Seconds from the first event visible in Redis to the last; `mark` is called at both.
    Counting reads every minute's counters, which costs Redis CPU that would be charged to
    the connector's events, so it is done often only near the first and the last event."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = counted(client, keys)
        now = time.monotonic()
        if seen and first is None:
            first = now
            mark()
        if seen >= total and first is not None:
            mark()
            return now - first
        time.sleep(0.02 if first is None or seen >= total * 0.95 else 0.25)
    raise TimeoutError(f"only {counted(client, keys)} of {total} events in {timeout:.0f} s")


def connector_env(settings: ConnectorSettings) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMREC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMREC_REDIS_URL": settings.redis_url,
        "STREAMREC_DATASET_GROUP": settings.dataset_group,
        "STREAMREC_CONNECTOR_WEB_PORT": str(free_port()),
    }


def clickstream_record(user: str, event: dict[str, Any]) -> dict[str, Any]:
    """A synthetic PutEvents event as a web-analytics clickstream record."""
    properties: dict[str, Any] = event["properties"]
    return {
        "id": event["eventId"],
        "event": NAMES[str(event["eventType"])],
        "timestamp_ms": int(event["sentAt"]) * 1000 + 123,
        "visitor": {"account": user, "session": f"s-{user}"},
        "products": [{"sku": event["itemId"], "price": event["eventValue"]}],
        "shown": event["impression"],
        "context": {"device": str(properties["device"]).upper(), "city": properties["location"]},
        "page": {"url": f"/p/{event['itemId']}", "referrer": "https://search.example"},
    }


def prepare_clickstream(settings: ConnectorSettings) -> str:
    """A clickstream topic beside the group's own, and a source reading it; its name."""
    topic = f"{settings.dataset_group}.clicks"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, settings.topic_partitions)])
    open_sources(settings).create("clicks", topic, "json", CLICKSTREAM_MAPPING, None)
    return topic


def publish_clickstream(settings: ConnectorSettings, topic: str, events: int, seed: int) -> None:
    producer = Producer({**settings.kafka_config(), "linger.ms": 20, "batch.size": 1_000_000})
    for user, event in synthetic_events(events, seed):
        value = json.dumps(clickstream_record(user, event)).encode()
        _produce(producer, topic, user, value)
    producer.flush(120)


@contextlib.contextmanager
def running_connector(settings: ConnectorSettings) -> Iterator[subprocess.Popen[bytes]]:
    """A `streamrec connector` process for the settings' group, stopped on exit."""
    with running_connectors(settings, 1) as children:
        yield children[0][0]


@contextlib.contextmanager
def running_connectors(
    settings: ConnectorSettings, replicas: int
) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    """`replicas` `streamrec connector` processes of the settings' group (one consumer
    group), each with its web port, stopped on exit."""
    ports = [free_port() for _ in range(replicas)]
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in ports]
        children = [
            subprocess.Popen(
                ["streamrec", "connector"],
                env={**connector_env(settings), "STREAMREC_CONNECTOR_WEB_PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            for port, log in zip(ports, logs, strict=True)
        ]
        try:
            yield list(zip(children, ports, strict=True))
        except TimeoutError:
            _explain_exits(children, logs)
            raise
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(60)


def _explain_exits(children: list[subprocess.Popen[bytes]], logs: list[IO[bytes]]) -> None:
    """Print the end of the log of each connector that exited before the events were in."""
    for child, log in zip(children, logs, strict=True):
        if child.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            print(f"a connector exited with {child.returncode}; its log ends:\n{tail}")


@dataclass(frozen=True)
class Run:
    """One ingest run: events/s from the first event visible in Redis to the last, and the
    CPU µs per event each part spent meanwhile (None for a part on another machine)."""

    events_per_s: float
    cpu_us_per_event: dict[str, float | None]
    # Redis's own time per command (INFO commandstats), µs per event: where its CPU goes.
    # A script's time includes the commands it calls, which are also listed on their own.
    redis_commands: dict[str, float]


def service_pids(settings: ConnectorSettings) -> dict[str, int | None]:
    """The broker's and Redis's processes on this machine, by the ports they listen on."""
    kafka_port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    redis_port = urlparse(settings.redis_url).port or 6379
    return {"redis": pid_listening_on(redis_port), "broker": pid_listening_on(kafka_port)}


def run_connectors(
    settings: ConnectorSettings,
    total: int,
    timeout: float,
    replicas: int = 1,
    publish_when_ready: Callable[[], None] | None = None,
) -> Run:
    """Run `replicas` connectors until all `total` events are in Redis. Records are already
    published (the run counts from the first event visible in Redis), or `publish_when_ready`
    publishes them once every replica holds partitions (the run counts from then)."""
    client = redis.Redis.from_url(settings.redis_url)
    services = service_pids(settings)
    keys = Keys(settings.dataset_group)
    with running_connectors(settings, replicas) as children:
        marks: list[dict[str, float]] = []
        commands: list[dict[str, float]] = []

        def mark() -> None:
            reading = {"connector": sum(tree_cpu_seconds(c.pid) for c, _ in children)}
            reading.update({name: cpu_seconds(pid) for name, pid in services.items() if pid})
            marks.append(reading)
            commands.append(command_seconds(client))

        if publish_when_ready is None:
            seconds = time_until_counted(client, keys, total, timeout, mark)
        else:
            # The connectors read while the events are published: count from the start.
            wait_until_assigned([port for _, port in children])
            mark()
            started = time.monotonic()
            publish_when_ready()
            time_until_counted(client, keys, total, timeout)
            mark()
            seconds = time.monotonic() - started
    cpu: dict[str, float | None] = {"connector": None, "redis": None, "broker": None}
    for name in marks[0]:
        cpu[name] = round((marks[-1][name] - marks[0][name]) / total * 1e6, 1)
    known = [value for value in cpu.values() if value is not None]
    cpu["total"] = round(sum(known), 1) if len(known) == 3 else None
    return Run(total / seconds, cpu, per_event(commands[0], commands[-1], total))


def command_seconds(client: redis.Redis) -> dict[str, float]:
    """Seconds Redis has spent in each command so far (INFO commandstats)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): float(v["usec"]) / 1e6 for name, v in stats.items()}


def per_event(first: dict[str, float], last: dict[str, float], events: int) -> dict[str, float]:
    """µs per event of each command between two readings, largest first, the top 8."""
    spent = {
        name: (seconds - first.get(name, 0.0)) / events * 1e6 for name, seconds in last.items()
    }
    top = sorted(spent.items(), key=lambda pair: -pair[1])[:8]
    return {name: round(us, 2) for name, us in top if us >= 0.01}


def wait_until_assigned(ports: list[int], timeout: float = 120) -> None:
    """Until the connector on every web port answers /readyz with partitions assigned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_readiness(port).get("partitions", 0) > 0 for port in ports):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the {len(ports)} connectors were not all assigned partitions")


def _readiness(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:  # noqa: S310
            return dict(json.loads(answer.read()))
    except (OSError, ValueError):
        return {}


def run_connector(settings: ConnectorSettings, total: int, timeout: float) -> float:
    """events/s of a `streamrec connector` process over records already published."""
    return run_connectors(settings, total, timeout).events_per_s


def run_connector_cpu(
    settings: ConnectorSettings, total: int, timeout: float
) -> tuple[float, float]:
    """events/s of a `streamrec connector` process over records already published, and
    its process tree's CPU µs per event from the first event visible to the last."""
    run = run_connectors(settings, total, timeout)
    return run.events_per_s, float(run.cpu_us_per_event["connector"] or 0.0)


def run_bare(settings: ConnectorSettings, total: int, batch_size: int) -> float:
    """events/s of a plain confluent-kafka consumer running the same ingest code."""
    processor = event_processor(settings)
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"bare-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([settings.topics.events])
    client, keys = redis.Redis.from_url(settings.redis_url), Keys(settings.dataset_group)
    first = None
    try:
        while counted(client, keys) < total:
            messages = consumer.consume(batch_size, timeout=0.2)
            records = [
                SourceRecord(m.topic(), m.partition(), m.offset(), m.key(), m.value())
                for m in messages
                if m.error() is None
            ]
            if not records:
                continue
            processor.process(records)
            consumer.commit(asynchronous=True)
            first = first or time.monotonic()
        return total / (time.monotonic() - first) if first else 0.0
    finally:
        consumer.close()


def latency_at_rate(settings: ConnectorSettings, rate: int, seconds: float) -> list[float]:
    """Produce-to-visible latencies (ms) of probe events sent at `rate` events/s."""
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    assert tracker is not None
    client, keys = redis.Redis.from_url(settings.redis_url), Keys(settings.dataset_group)
    with running_connector(settings):
        _warm_up(settings, tracker.tracking_id, client, keys)
        return _measure(settings, tracker.tracking_id, client, keys, rate, seconds)


def _warm_up(
    settings: ConnectorSettings, tracking_id: str, client: redis.Redis, keys: Keys
) -> None:
    producer = Producer(settings.kafka_config())
    record = {
        "trackingId": tracking_id,
        "userId": "warm",
        "sessionId": "warm",
        "eventList": [{"eventType": "click", "itemId": "x", "sentAt": 1}],
    }
    _produce(producer, settings.topics.events, "warm", json.dumps(record).encode())
    producer.flush(30)
    deadline = time.monotonic() + 120
    while not client.exists(keys.history(Subject("u", "warm"))):
        if time.monotonic() > deadline:
            raise TimeoutError("the connector did not start")
        time.sleep(0.05)


def _measure(
    settings: ConnectorSettings,
    tracking_id: str,
    client: redis.Redis,
    keys: Keys,
    rate: int,
    seconds: float,
) -> list[float]:
    pending: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set() or pending:
            with lock:
                probes = list(pending.items())
            if probes:
                pipe = client.pipeline(transaction=False)
                for user, _ in probes:
                    pipe.exists(keys.history(Subject("u", user)))
                now = time.perf_counter()
                for (user, sent), visible in zip(probes, pipe.execute(), strict=True):
                    if visible:
                        latencies.append((now - sent) * 1000)
                        with lock:
                            pending.pop(user, None)
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    producer = Producer({**settings.kafka_config(), "linger.ms": 0})
    warm_up = int(rate * WARM_UP_SECONDS)  # first seconds at full rate are not measured
    events = synthetic_events(warm_up + int(rate * seconds), seed=7)
    start = time.perf_counter()
    for n, (user, event) in enumerate(events):
        if n % 20 == 0:  # send in bursts of 20 (every 10 ms at 2,000/s): less CPU spent waiting
            time.sleep(max(0.0, start + n / rate - time.perf_counter()))
        probe = n >= warm_up and n % 10 == 0
        who = f"probe-{n}" if probe else user
        record = {
            "trackingId": tracking_id,
            "userId": who,
            "sessionId": f"s-{who}",
            "eventList": [event],
        }
        if probe:
            with lock:
                pending[who] = time.perf_counter()
        _produce(producer, settings.topics.events, who, json.dumps(record).encode())
        producer.poll(0)
    producer.flush(30)
    done.set()
    poller.join(60)
    return latencies


def main() -> None:
    logs.configure(verbose=False)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument(
        "--source",
        choices=("mapped",),
        help="also measure a clickstream topic read through a source mapping",
    )
    parser.add_argument(
        "--connectors",
        help="only compare connector replica counts, e.g. 1,2,4 (one events topic of "
        "--partitions partitions per count)",
    )
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--source-only",
        action="store_true",
        help="with --source: measure only the PutEvents and mapped runs",
    )
    args = parser.parse_args()
    with services() as (kafka, redis_url):
        run_id = uuid.uuid4().hex[:6]
        base = ConnectorSettings(kafka_bootstrap=kafka, redis_url=redis_url)
        if args.connectors:
            counts = [int(n) for n in args.connectors.split(",")]
            replicas = measure_replicas(base, run_id, counts, args.events, args.partitions)
            print_replicas(replicas, args)
            print(json.dumps(replicas))
            return
        if args.source and args.source_only:
            mapped = measure_mapped(base, run_id, args.events, max(600.0, args.events / 500))
            print(json.dumps(mapped))
            return
        figures = measure(base, run_id, args)
    print_table(figures, args)
    print(json.dumps(figures))


def measure(base: ConnectorSettings, run_id: str, args: argparse.Namespace) -> dict[str, Any]:
    timeout = max(600.0, args.events / 500)
    one = prepare(base, f"bench1-{run_id}")
    publish(one, args.events, 1, seed=1)
    print(f"published {args.events} events, 1 per record", flush=True)
    run_1 = run_connectors(one, args.events, timeout)
    ten = prepare(base, f"bench10-{run_id}")
    publish(ten, args.events, 10, seed=2)
    print(f"published {args.events} events, 10 per record", flush=True)
    run_10 = run_connectors(ten, args.events, timeout)
    events_per_s_1, events_per_s_10 = run_1.events_per_s, run_10.events_per_s
    # The bare consumer reads the first group's topic again, with its own Redis state and
    # output topics, so it repeats exactly the connector's work on exactly the same records.
    bare_settings = prepare(
        base,
        f"bench1-{run_id}",
        interactions_topic="{group}.interactions.bare",
        deadletter_topic="{group}.deadletter.bare",
    )
    _forget_redis_state(bare_settings)
    bare = run_bare(bare_settings, args.events, bare_settings.connector_batch_size)
    latency = latency_at_rate(prepare(base, f"benchlat-{run_id}"), args.rate, args.latency_seconds)
    mapped = measure_mapped(base, run_id, args.events, timeout) if args.source else {}
    return {
        "events": args.events,
        "events_per_s_1": round(events_per_s_1),
        "events_per_s_10": round(events_per_s_10),
        "bare_events_per_s": round(bare),
        "ratio": round(events_per_s_1 / bare, 3) if bare else 0.0,
        "cpu_us_per_event": {"1": run_1.cpu_us_per_event, "10": run_10.cpu_us_per_event},
        "redis_command_us_per_event": {"1": run_1.redis_commands, "10": run_10.redis_commands},
        "p50_ms_at_2000": round(statistics.median(latency), 1),
        "p99_ms_at_2000": round(statistics.quantiles(latency, n=100)[98], 1),
        "latency_probes": len(latency),
        **mapped,
    }


def measure_replicas(
    base: ConnectorSettings, run_id: str, counts: list[int], events: int, partitions: int
) -> dict[str, Any]:
    """For each replica count, a group of its own whose events topic has `partitions`
    partitions: the replicas start, get their partitions, then `events` events (one per
    record) are published, and the run lasts until all are in Redis."""
    rows = []
    for replicas in counts:
        settings = prepare(base, f"benchrep{replicas}-{run_id}", topic_partitions=partitions)
        run = run_connectors(
            settings,
            events,
            max(600.0, events / 500),
            replicas,
            lambda settings=settings: publish(settings, events, 1, seed=4),  # type: ignore[misc]
        )
        rows.append(
            {
                "connectors": replicas,
                "events_per_s": round(run.events_per_s),
                "cpu_us_per_event": run.cpu_us_per_event,
            }
        )
        print(
            f"{replicas} connectors: {run.events_per_s:,.0f} events/s, CPU µs/event "
            f"{run.cpu_us_per_event}",
            flush=True,
        )
    return {"events": events, "partitions": partitions, "cores": os.cpu_count(), "replicas": rows}


def print_replicas(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\ningest with connector replicas, {figures['events']:,} events, one per record, "
        f"{figures['partitions']} partitions, {figures['cores']} cores"
    )
    print(
        f"  {'connectors':>10}  {'events/s':>9}  {'CPU µs/event: connectors':>24}  "
        f"{'Redis':>6}  {'broker':>6}  {'total':>6}"
    )
    for row in figures["replicas"]:
        cpu = row["cpu_us_per_event"]
        print(
            f"  {row['connectors']:>10}  {row['events_per_s']:>9,}  {cpu['connector']!s:>24}  "
            f"{cpu['redis']!s:>6}  {cpu['broker']!s:>6}  {cpu['total']!s:>6}"
        )


def measure_mapped(
    base: ConnectorSettings, run_id: str, events: int, timeout: float
) -> dict[str, Any]:
    """The PutEvents path (1 event per record) and a mapped clickstream source of the same
    events, each in a group of its own, run in the order PutEvents, mapped, mapped,
    PutEvents so that neither gains from going first or last (a growing broker log, Redis
    holding more keys): events/s and CPU µs/event, each the mean of its two runs."""
    runs: dict[str, list[tuple[float, float]]] = {"putevents": [], "mapped": []}
    for n, kind in enumerate(("putevents", "mapped", "mapped", "putevents")):
        settings = prepare(base, f"bench{kind[:3]}{n}-{run_id}")
        if kind == "putevents":
            publish(settings, events, 1, seed=3)
        else:
            publish_clickstream(settings, prepare_clickstream(settings), events, seed=3)
        runs[kind].append(run_connector_cpu(settings, events, timeout))
        events_per_s, cpu_us = runs[kind][-1]
        print(f"{kind}: {events_per_s:,.0f} events/s, {cpu_us:.1f} us CPU/event", flush=True)
    rate = {kind: statistics.mean(r for r, _ in done) for kind, done in runs.items()}
    cpu = {kind: statistics.mean(c for _, c in done) for kind, done in runs.items()}
    return {
        "putevents_events_per_s": round(rate["putevents"]),
        "mapped_events_per_s": round(rate["mapped"]),
        "putevents_cpu_us_per_event": round(cpu["putevents"], 1),
        "mapped_cpu_us_per_event": round(cpu["mapped"], 1),
        "putevents_cpu_us_per_run": [round(c, 1) for _, c in runs["putevents"]],
        "mapped_cpu_us_per_run": [round(c, 1) for _, c in runs["mapped"]],
        "mapped_cost_ratio": round(cpu["mapped"] / cpu["putevents"], 3),
    }


def _forget_redis_state(settings: ConnectorSettings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{Keys(settings.dataset_group).base}*", count=10_000))
    for start in range(0, len(keys), 10_000):
        client.delete(*keys[start : start + 10_000])


def print_table(figures: dict[str, Any], args: argparse.Namespace) -> None:
    rows = [
        ("streamrec connector, 1 event/record", f"{figures['events_per_s_1']:,} events/s"),
        ("streamrec connector, 10 events/record", f"{figures['events_per_s_10']:,} events/s"),
        (
            "bare confluent-kafka consumer, 1 event/record",
            f"{figures['bare_events_per_s']:,} events/s",
        ),
        ("connector / bare", f"{figures['ratio']}"),
        (f"produce->Redis p50 at {args.rate}/s", f"{figures['p50_ms_at_2000']} ms"),
        (f"produce->Redis p99 at {args.rate}/s", f"{figures['p99_ms_at_2000']} ms"),
    ]
    if "mapped_cost_ratio" in figures:
        rows += [
            (
                "PutEvents, 1 event/record: events/s, CPU µs/event",
                f"{figures['putevents_events_per_s']:,}, {figures['putevents_cpu_us_per_event']}",
            ),
            (
                "mapped clickstream source: events/s, CPU µs/event",
                f"{figures['mapped_events_per_s']:,}, {figures['mapped_cpu_us_per_event']}",
            ),
            ("mapped / PutEvents CPU per event", f"{figures['mapped_cost_ratio']}"),
        ]
    for per_record, by_command in figures["redis_command_us_per_event"].items():
        shown = ", ".join(f"{name} {us}" for name, us in by_command.items())
        rows.append((f"Redis µs/event by command, {per_record} event(s)/record", shown))
    width = max(len(name) for name, _ in rows)
    print(f"\ningest benchmark, {args.events:,} events, {os.cpu_count()} cores")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>16}")


if __name__ == "__main__":
    main()
