"""FULL runs at growing data sizes: seconds, peak memory and held-out NDCG@10.

For each size, synthetic interactions are generated straight into a worker cache on disk,
a chunk at a time (never all in memory), then a child process of its own runs what a FULL
run does after reading Kafka, on the events before the newest 5%: the data prepared from
the cache (worker.data.prepared), the minimum check, then `full_model` (hold out, train
within STREAMREC_TRAINING_BUDGET_SECONDS, evaluate, place items, per-item arrays), with the
default settings but 10,000 held-out users. Then UPDATE brings in the newest 5% (where the
last 1% of the catalogue first appears). The child's peak resident memory is its own
(ru_maxrss, which counts the mapped file pages it touched).

    python bench/train.py [--events 1m,5m,20m] [--items 500000] [--budget-seconds 1800]
    python bench/train.py --events 5m --budgets 30,60,120,1800 --no-update   # quality curve
    python bench/train.py --events 1m,20m --seeds 7,1,2 --no-update   # NDCG mean and spread

The training seed also draws the held-out users, so NDCG@10 moves with it by several
thousandths, as much as some differences between sizes; compare sizes over a few seeds
(docs/model.md).

Users mostly stay within one of 500 taste clusters, with Zipf-like popularity inside each
cluster and across the catalogue; 50 events per user on average; two event types, a DEVICE.
Prints one table; the last line is one JSON object of the figures per size (and budget).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.data.cache import BASE_COLUMNS, CHUNK_ROWS, DataCache, RecordColumns
from worker.data.prepared import prepare
from worker.data.selection import check_minimum
from worker.settings import WorkerSettings
from worker.training.pipeline import Catalog, full_model, updated_model

NO_CATALOG = Catalog(items=[], created={}, metadata={})
CLUSTERS = 500
EVENTS_PER_USER = 50
TYPES = ("click", "purchase")
DEVICES = ("phone", "tv", "web")
FIELDS = ["DEVICE"]
LATE_SHARE = 0.03  # the newest events, where the last 1% of the catalogue first appears
UPDATE_SHARE = 0.05  # the newest events, left to UPDATE
EVALUATED = 10_000  # held-out users (the worker's default is 1,000): NDCG@10 within about 0.002


def size(text: str) -> int:
    """1m -> 1,000,000; 500k -> 500,000; plain numbers as they are."""
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def synthetic_chunks(events: int, items: int, seed: int = 11) -> Iterator[RecordColumns]:
    """The dataset as cache chunks of CHUNK_ROWS rows, in time order."""
    rng = np.random.default_rng(seed)
    users = max(1, events // EVENTS_PER_USER)
    taste = rng.integers(0, CLUSTERS, users)
    per_cluster = max(1, items // CLUSTERS)
    for start in range(0, events, CHUNK_ROWS):
        count = min(CHUNK_ROWS, events - start)
        user = rng.integers(0, users, count)
        within = np.minimum(rng.zipf(1.3, count) - 1, per_cluster - 1)
        anywhere = np.minimum(rng.zipf(1.2, count) - 1, items - 1)
        item = np.where(rng.random(count) < 0.7, taste[user] * per_cluster + within, anywhere)
        position = start + np.arange(count)
        late = position >= events * (1 - LATE_SHARE)  # the newest 3%: new items released
        fresh = late & (rng.random(count) < 0.2)
        newest = items - 1 - rng.integers(0, max(1, items // 100), count)
        item = np.where(
            fresh,
            newest,
            np.where(~late & (item >= items - items // 100), item - items // 100, item),
        )
        timestamp = 1_600_000_000 + position.astype(np.int64) * 30
        yield _chunk(user, item, timestamp, rng)


def update_cut(events: int) -> int:
    """The timestamp FULL trains before; UPDATE then brings in the rest (new items)."""
    return 1_600_000_000 + int(events * (1 - UPDATE_SHARE)) * 30


def _chunk(
    user: np.ndarray, item: np.ndarray, timestamp: np.ndarray, rng: np.random.Generator
) -> RecordColumns:
    """Cache columns of one chunk: its own vocabulary of the ids it uses."""
    user_ids, user_codes = np.unique(user, return_inverse=True)
    item_ids, item_codes = np.unique(item, return_inverse=True)
    strings = [
        *(f"u{n}" for n in user_ids.tolist()),
        *(f"i{n}" for n in item_ids.tolist()),
        *TYPES,
        *DEVICES,
    ]
    types_at, devices_at = len(user_ids) + len(item_ids), len(strings) - len(DEVICES)
    count = len(user)
    codes = {
        "USER_ID": user_codes,
        "ITEM_ID": len(user_ids) + item_codes,
        "EVENT_TYPE": types_at + rng.integers(0, len(TYPES), count),
        "SESSION_ID": np.full(count, -1),
        "DEVICE": devices_at + rng.integers(0, len(DEVICES), count),
    }
    assert set(codes) == {*BASE_COLUMNS, *FIELDS}
    return RecordColumns(
        strings,
        {name: values.astype(np.int32) for name, values in codes.items()},
        timestamp,
        np.full(count, np.nan, np.float32),
        np.zeros(count, np.uint64),
    )


def run_full(
    directory: str, events: int, budget: float, seed: int, update: bool, results: dict[str, Any]
) -> None:
    """In a child: FULL on the data before the update cut (prepared from the cache, checked,
    `full_model`), then UPDATE with all of it; figures into `results`."""
    settings = WorkerSettings(
        training_budget_seconds=budget, evaluation_users=EVALUATED, training_seed=seed
    )
    cache = DataCache(Path(directory))
    cut = update_cut(events)

    def older() -> Iterator[RecordColumns]:
        return (chunk.select(chunk.timestamp < cut) for chunk in cache.chunks())

    started = time.perf_counter()
    data, _ = prepare(older, FIELDS, settings, Path(directory) / "prepared-full")
    check_minimum(data)
    results["prepare_s"] = time.perf_counter() - started
    passes: list[str] = []  # "epoch/epochs" of each pass made, as full_model reports them

    def report(line: str) -> None:
        if line.startswith("epoch "):
            passes.append(line.split()[1])

    model, _ = full_model(data, settings, NO_CATALOG, lambda: False, report)
    results["passes"] = passes[-1] if passes else "0/0"
    results["full_s"] = time.perf_counter() - started
    results["ndcg10"] = float(model.meta["metrics"].get("ndcg@10", float("nan")))
    results["update_s"], results["items_added"] = float("nan"), 0
    if not update:
        results["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return
    started = time.perf_counter()
    everything, _ = prepare(cache.chunks, FIELDS, settings, Path(directory) / "prepared")
    updated, _ = updated_model(model, everything, NO_CATALOG, "bench")
    results["update_s"] = time.perf_counter() - started
    results["items_added"] = int(updated.meta["items_added"])
    results["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(directory: Path, events: int, budget: float, seed: int, update: bool) -> dict[str, Any]:
    """run_full in a fresh process, so its peak memory is its own."""
    with multiprocessing.Manager() as manager:
        results = manager.dict()
        child = multiprocessing.get_context("spawn").Process(
            target=run_full, args=(str(directory), events, budget, seed, update, results)
        )
        child.start()
        try:
            child.join()
        finally:  # a stopped benchmark stops its child too
            if child.is_alive():
                child.terminate()
                child.join()
        if child.exitcode != 0:
            raise SystemExit(f"the benchmark child failed (exit {child.exitcode})")
        return dict(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1m,5m,20m")
    parser.add_argument("--items", type=size, default=500_000)
    parser.add_argument(
        "--budget-seconds", type=float, default=WorkerSettings().training_budget_seconds
    )
    parser.add_argument("--budgets", help="several budgets, comma-separated: the quality curve")
    parser.add_argument(
        "--seeds",
        default=str(WorkerSettings().training_seed),
        help="training seeds, comma-separated: one FULL each, then NDCG@10's mean and spread",
    )
    parser.add_argument("--no-update", action="store_true", help="FULL only, no UPDATE step")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `measure` ends its child
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else [args.budget_seconds]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print(
        f"{'events':>12} {'items':>9} {'budget s':>9} {'seed':>5} {'generate s':>11} "
        f"{'prepare s':>10} {'FULL s':>8} {'passes':>7} {'peak MB':>8} {'NDCG@10':>8} "
        f"{'UPDATE s':>9} {'new items':>10}",
        flush=True,
    )
    figures: list[dict[str, Any]] = []
    for events in [size(text) for text in args.events.split(",")]:
        with tempfile.TemporaryDirectory(prefix="streamrec-bench-train-") as work:
            directory = Path(work) / "cache"
            started = time.perf_counter()
            DataCache(directory).replace_with(synthetic_chunks(events, args.items), FIELDS)
            generate_s = time.perf_counter() - started
            for budget in budgets:
                for seed in seeds:
                    found = measure(directory, events, budget, seed, not args.no_update)
                    figures.append(row(events, args.items, budget, seed, generate_s, found))
                    print_row(figures[-1])
            shutil.rmtree(directory, ignore_errors=True)
    spread = ndcg_spread(figures)
    if len(seeds) > 1:
        print_spread(spread)
    print(json.dumps({"train": figures, "ndcg10_over_seeds": spread}))


def row(
    events: int, items: int, budget: float, seed: int, generate_s: float, found: dict[str, Any]
) -> dict[str, Any]:
    """One run's figures, rounded for the table and the JSON line."""
    return {
        "events": events,
        "items": items,
        "budget_s": budget,
        "seed": seed,
        "generate_s": round(generate_s, 1),
        "prepare_s": round(found["prepare_s"], 1),
        "full_s": round(found["full_s"], 1),
        "passes": found["passes"],
        "update_s": None if np.isnan(found["update_s"]) else round(found["update_s"], 1),
        "items_added": found["items_added"],
        "peak_mb": round(found["peak_mb"]),
        "ndcg10": round(found["ndcg10"], 4),
    }


def print_row(run: dict[str, Any]) -> None:
    print(
        f"{run['events']:>12,} {run['items']:>9,} {run['budget_s']:>9.0f} {run['seed']:>5} "
        f"{run['generate_s']:>11.1f} {run['prepare_s']:>10.1f} {run['full_s']:>8.1f} "
        f"{run['passes']:>7} {run['peak_mb']:>8.0f} {run['ndcg10']:>8.4f} "
        f"{'-' if run['update_s'] is None else run['update_s']:>9} {run['items_added']:>10,}",
        flush=True,
    )


def ndcg_spread(figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NDCG@10 over the seeds of each size and budget: mean, lowest, highest."""
    groups: dict[tuple[int, float], list[float]] = {}
    for run in figures:
        groups.setdefault((run["events"], run["budget_s"]), []).append(run["ndcg10"])
    return [
        {
            "events": events,
            "budget_s": budget,
            "seeds": len(values),
            "mean": round(float(np.mean(values)), 4),
            "min": min(values),
            "max": max(values),
        }
        for (events, budget), values in groups.items()
    ]


def print_spread(spread: list[dict[str, Any]]) -> None:
    print(f"\n{'events':>12} {'budget s':>9} {'seeds':>6} {'mean':>8} {'min':>8} {'max':>8}")
    for group in spread:
        print(
            f"{group['events']:>12,} {group['budget_s']:>9.0f} {group['seeds']:>6} "
            f"{group['mean']:>8.4f} {group['min']:>8.4f} {group['max']:>8.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
