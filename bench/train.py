"""Wall time and peak memory of FULL and UPDATE runs, on MovieLens-100K and on a synthetic
dataset of 1,000,000 interactions over 50,000 items.

Each dataset runs in a child process of its own, so its peak resident memory is its own.
The child splits the data by time: FULL trains (and evaluates) on the first 95%, then UPDATE
brings in the last 5% (new items included) on top of that model. Both are the worker's own
steps (worker.training.pipeline.full_model / updated_model) with the default settings; reading the
dataset from Kafka is not part of the figures.

    python bench/train.py [--datasets ml100k,1m] [--interactions 1000000] [--items 50000]

Prints one table; the last line is one JSON object with full_s_ml100k, update_s_ml100k,
full_s_1m, update_s_1m, peak_mb_ml100k and peak_mb_1m.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.movielens import load_ml100k
from connector.model.history import ABSENT
from worker.data.interactions import Interactions
from worker.settings import WorkerSettings
from worker.training.pipeline import Catalog, full_model, updated_model

NO_CATALOG = Catalog(items=[], created={}, metadata={})


def synthetic(interactions: int, items: int, seed: int = 11) -> Interactions:
    """Users who mostly stay within one of 500 taste clusters, with Zipf-like item
    popularity inside each cluster and across the catalog; two event types, a DEVICE; the
    last 1% of items appear only near the end."""
    rng = np.random.default_rng(seed)
    users = interactions // 50
    user = np.sort(rng.integers(0, users, interactions)).astype(np.int32)
    clusters = 500
    taste = rng.integers(0, clusters, users)[user]
    per_cluster = items // clusters
    within = np.minimum(rng.zipf(1.3, interactions) - 1, per_cluster - 1)
    anywhere = np.minimum(rng.zipf(1.2, interactions) - 1, items - 1)
    item = np.where(rng.random(interactions) < 0.7, taste * per_cluster + within, anywhere)
    timestamp = 1_600_000_000 + np.arange(interactions, dtype=np.int64) * 30
    # 1% of the catalogue is released in the last 3% of the time, so UPDATE has new items
    late = timestamp >= np.quantile(timestamp, 0.97)
    fresh = rng.random(interactions) < 0.2
    item = np.where(late & fresh, items - 1 - rng.integers(0, items // 100, interactions), item)
    item = np.where(~late & (item >= items - items // 100), item - items // 100, item)
    order = np.lexsort((timestamp, user))
    return Interactions(
        user=user[order],
        item=item.astype(np.int32)[order],
        timestamp=timestamp[order],
        event_type=rng.integers(1, 3, interactions).astype(np.int32),
        event_value=np.full(interactions, np.nan, np.float32),
        context={"DEVICE": rng.integers(1, 4, interactions).astype(np.int32)},
        users=[f"u{n}" for n in range(users)],
        items=[f"i{n}" for n in range(items)],
        event_types=[ABSENT, "click", "purchase"],
        context_values={"DEVICE": [ABSENT, "phone", "tv", "web"]},
    )


def split_by_time(data: Interactions, share: float) -> Interactions:
    """The interactions before the `share` quantile of time."""
    cut = np.quantile(data.timestamp, share)
    return data.select(data.timestamp < cut)


def run_dataset(name: str, interactions: int, items: int, results: dict[str, float]) -> None:
    """FULL on the first 95% then UPDATE with the rest; figures into `results` (child)."""
    data = load_ml100k() if name == "ml100k" else synthetic(interactions, items)
    settings = WorkerSettings()
    older = split_by_time(data, 0.95)
    started = time.perf_counter()
    model, _ = full_model(older, settings, NO_CATALOG, lambda: False)
    results["full_s"] = time.perf_counter() - started
    results["items_before"] = len(set(older.item.tolist()))
    started = time.perf_counter()
    updated, _ = updated_model(model, data, NO_CATALOG, "bench")
    results["update_s"] = time.perf_counter() - started
    results["items_added"] = int(updated.meta["items_added"])
    results["ndcg10"] = float(model.meta["metrics"].get("ndcg@10", float("nan")))
    results["interactions"] = len(data)
    results["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, interactions: int, items: int) -> dict[str, float]:
    """run_dataset in a fresh process, so its peak memory is measured alone."""
    with multiprocessing.Manager() as manager:
        results = manager.dict()
        child = multiprocessing.get_context("spawn").Process(
            target=run_dataset, args=(name, interactions, items, results)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"{name}: the benchmark child failed (exit {child.exitcode})")
        return dict(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ml100k,1m")
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    print(
        f"{'dataset':<8} {'events':>10} {'FULL s':>8} {'UPDATE s':>9} {'new items':>10} "
        f"{'peak MB':>8} {'NDCG@10':>8}"
    )
    for name in args.datasets.split(","):
        found = measure(name, args.interactions, args.items)
        print(
            f"{name:<8} {found['interactions']:>10,} {found['full_s']:>8.1f} "
            f"{found['update_s']:>9.2f} {found['items_added']:>10,} {found['peak_mb']:>8.0f} "
            f"{found['ndcg10']:>8.4f}",
            flush=True,
        )
        figures.update(
            {
                f"full_s_{name}": round(found["full_s"], 1),
                f"update_s_{name}": round(found["update_s"], 2),
                f"peak_mb_{name}": round(found["peak_mb"]),
            }
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
