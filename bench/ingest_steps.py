"""Where the ingest code spends its time, step by step, without faust.

Runs `EventProcessor.process` in this process over batches of synthetic events (the shape
bench/ingest.py publishes) against a real broker and Redis, with a timer around each store
call, and prints microseconds per event for each step.

    python bench/ingest_steps.py [--events 10000] [--batch 1000]

Starts a local Kafka broker and redis-server unless STREAMREC_* are set. The last line
printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import prepare, synthetic_events
from bench.services import services
from connector import logs
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.trackers import open_trackers
from connector.wiring import event_processor

STEPS = {
    "_store": ("links", "known", "admit_event_types", "apply"),
    "_writer": ("write",),
    "_served": ("get_many",),
}


def timed(totals: dict[str, float], name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """`call`, adding its wall time to totals[name]."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def main() -> None:
    logs.configure(verbose=False)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    with services() as (kafka, redis_url):
        settings = prepare(
            ConnectorSettings(kafka_bootstrap=kafka, redis_url=redis_url),
            f"steps-{uuid.uuid4().hex[:6]}",
        )
        figures = measure(settings, args.events, args.batch)
    print(f"\ningest steps, {args.events:,} events in batches of {args.batch:,} (µs per event)")
    for name, value in figures.items():
        print(f"  {name:<18} {value:>8}")
    print(json.dumps(figures))


def measure(settings: ConnectorSettings, events: int, batch: int) -> dict[str, float]:
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    assert tracker is not None
    processor = event_processor(settings)
    records = [
        SourceRecord(
            "events",
            0,
            n,
            user.encode(),
            orjson.dumps(
                {
                    "trackingId": tracker.tracking_id,
                    "userId": user,
                    "sessionId": f"s-{user}",
                    "eventList": [event],
                }
            ),
        )
        for n, (user, event) in enumerate(synthetic_events(events + batch, seed=3))
    ]
    processor.process(records[:batch])  # warm-up: scripts loaded, connections open
    totals: dict[str, float] = {}
    for attribute, names in STEPS.items():
        target = getattr(processor, attribute)
        for name in names:
            setattr(target, name, timed(totals, name, getattr(target, name)))
    started = time.perf_counter()
    for start in range(batch, events + batch, batch):
        processor.process(records[start : start + batch])
    total = time.perf_counter() - started
    per_event = {name: round(seconds / events * 1e6, 1) for name, seconds in totals.items()}
    planning = total - sum(totals.values())
    return {
        "total_us": round(total / events * 1e6, 1),
        "planning_us": round(planning / events * 1e6, 1),
        **{f"{name}_us": value for name, value in per_event.items()},
    }


if __name__ == "__main__":
    main()
