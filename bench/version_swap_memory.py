"""Resident memory of a serving process across model-version swaps, with and without
handing freed memory back to the OS.

    python bench/version_swap_memory.py [--items 100000] [--versions 8]

In a child process per variant (each its own heap): publish --versions versions of --items
items in turn (random weights of a trained model's shapes, bench/serve.py's random_version),
load each through a ModelHolder (the served version with its item index, as the API and the
connector hold it) and rank 200 users with it so its per-version data exists; print the
process's RSS after each swap. The variants: the product as it is (ModelHolder.reload calls
connector.memory.return_freed_memory after each swap), and the same with that call made a
no-op, which is how the product ran before. Starts a local redis-server unless
STREAMREC_REDIS_URL is set. Prints a table; the last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.services import redis_service

CHILD = """
import gc, sys, uuid
import numpy as np
import redis
import connector.memory
import connector.serving.current_model as current_model
if not {trim}:
    current_model.return_freed_memory = lambda: False
from bench.serve import random_version
from connector.keys import Keys
from connector.model.history import HistoryEntry
from connector.serving.current_model import ModelHolder
from connector.serving.item_index import single_threaded_numerics
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from connector.stores.model_versions import ModelStore

def resident_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

single_threaded_numerics()
store = ModelStore(redis.Redis.from_url({url!r}), Keys("swap-" + uuid.uuid4().hex[:6]))
holder = ModelHolder(store, index_min_items=50_000)
rng = np.random.default_rng(0)
for n in range({versions}):
    store.publish(random_version({items}, seed=n), keep=2)
    holder.reload()
    histories = [[HistoryEntry(item=f"item-{{i}}") for i in rng.integers(0, 1000, 5)]
                 for _ in range(200)]
    recommend_many(holder.current, histories, 100, Exploration(), rng)
    del histories
    gc.collect()
    print(round(resident_mib(), 1), flush=True)
"""


def run_variant(url: str, items: int, versions: int, trim: bool) -> list[float]:
    """RSS (MiB) after each swap, from a child process."""
    code = CHILD.format(url=url, items=items, versions=versions, trim=trim)
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
    )
    return [float(line) for line in done.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=8)
    args = parser.parse_args()
    with redis_service() as url:
        untrimmed = run_variant(url, args.items, args.versions, trim=False)
        trimmed = run_variant(url, args.items, args.versions, trim=True)
    print(f"\nRSS MiB after each of {args.versions} swaps of {args.items:,}-item versions")
    print(f"  {'swap':>4} {'freed memory kept':>18} {'handed back':>12}")
    for n, (kept, back) in enumerate(zip(untrimmed, trimmed, strict=True), start=1):
        print(f"  {n:>4} {kept:>18} {back:>12}")
    figures = {
        "items": args.items,
        "versions": args.versions,
        "rss_mb_kept": untrimmed,
        "rss_mb_handed_back": trimmed,
        "growth_after_first_pct_kept": _growth(untrimmed),
        "growth_after_first_pct_handed_back": _growth(trimmed),
    }
    print(json.dumps(figures))


def _growth(series: list[float]) -> float:
    """Growth of the last figure over the first, in percent."""
    return round(100 * (series[-1] - series[0]) / series[0], 1)


if __name__ == "__main__":
    main()
