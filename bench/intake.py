"""PutEvents over HTTP (`bench/serve.py --intake`): POST /events on a `streamrec api` process
beside a direct Kafka producer, in the same run.

For each request size (1 and 10 events), at --intake-rate requests/s for --seconds, open loop
from a separate process (bench/serve_load.py):
- `http`: POST /events to the API, each latency until its 200 (which comes once the broker
  has the record);
- `kafka`: the same PutEvents record produced straight to the events topic by an idempotent
  producer, each latency until its delivery report: the floor the HTTP path adds to.
Also the API process's CPU per event, and that the topic received exactly what was sent.
The target (issue 20): 1,000 requests/s of 10 events with p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.ingest import prepare
from bench.proc_stats import tree_cpu_seconds
from connector.settings import ConnectorSettings
from connector.trackers import open_trackers

SIZES = (1, 10)
TARGET_P99_MS = 50.0


def measure_intake(
    base: ConnectorSettings, run_id: str, args: argparse.Namespace, serve: Any
) -> dict[str, Any]:
    """The figures of every size and path; `serve` is bench/serve.py (its API process,
    load generator and model publisher)."""
    settings = prepare(base, f"benchintake-{run_id}")
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    assert tracker is not None
    serve.publish_version(settings, 1_000, seed=1)  # the API is ready once a model is served
    load = serve.run_load
    figures: dict[str, Any] = {}
    with serve.running_api(settings) as port:
        pid = serve.API_PIDS[port]
        url = f"http://127.0.0.1:{port}/events"
        for size in SIZES:
            extra = {"trackingId": tracker.tracking_id, "events": size}
            before, sent_before = tree_cpu_seconds(pid), records(settings)
            http = load(
                "events", url, settings.dataset_group, 10_000, args.intake_rate, args.seconds, extra
            )
            cpu = tree_cpu_seconds(pid) - before
            arrived = records(settings) - sent_before
            kafka = load(
                "kafka",
                settings.kafka_bootstrap,
                settings.topics.events,
                10_000,
                args.intake_rate,
                args.seconds,
                extra,
            )
            figures[f"http_{size}"] = summary(http, size)
            figures[f"http_{size}"]["api_cpu_us_per_event"] = round(
                cpu / max(http["sent"] * size, 1) * 1e6, 1
            )
            figures[f"http_{size}"]["records_arrived"] = arrived
            figures[f"kafka_{size}"] = summary(kafka, size)
    return figures


def summary(run: dict[str, Any], size: int) -> dict[str, Any]:
    """p50/p99 latency, events/s and errors of one load run."""
    latencies = sorted(run["latencies_ms"])

    def pick(quantile: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(quantile * len(latencies)))], 2)

    return {
        "p50_ms": pick(0.5) if latencies else None,
        "p99_ms": pick(0.99) if latencies else None,
        "events_per_s": round(run["sent"] * size / run["seconds"]),
        "requests": run["sent"],
        "errors": run["errors"],
        "error_sample": run["error_sample"][:200],
        "max_lag_ms": run["max_lag_ms"],
    }


def records(settings: ConnectorSettings) -> int:
    """Records in the group's events topic now (the sum of its partitions' end offsets)."""
    consumer = Consumer({**settings.kafka_config(), "group.id": "bench-intake-count"})
    try:
        topic = settings.topics.events
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def print_intake(figures: dict[str, Any], args: argparse.Namespace) -> None:
    """The table of the intake run."""
    print(f"\nPutEvents over HTTP at {args.intake_rate} requests/s, {os.cpu_count()} cores")
    print(f"  {'path':<34} {'p50 ms':>8} {'p99 ms':>8} {'events/s':>9} {'errors':>7}  notes")
    for size in SIZES:
        for path in ("http", "kafka"):
            run = figures[f"{path}_{size}"]
            name = (
                f"POST /events, {size} event(s)/request"
                if path == "http"
                else "  direct producer, same records"
            )
            note = ""
            if path == "http":
                goal = f"goal p99 < {TARGET_P99_MS:g} ms" if size == 10 else ""
                note = (
                    f"API CPU {run['api_cpu_us_per_event']} us/event; "
                    f"{run['records_arrived']} records arrived of {run['requests']} sent {goal}"
                )
            print(
                f"  {name:<34} {run['p50_ms']!s:>8} {run['p99_ms']!s:>8} "
                f"{run['events_per_s']:>9,} {run['errors']:>7}  {note}"
            )
