"""Hyperparameter screening of our model on a validation split of a quality dataset.

Why a validation split: bench/quality.py measures on each user's latest rating, and a
setting chosen by looking at those targets is fitted to them (a learning rate picked that
way lost half its gain on seeds it had not seen). Here each user's latest rating is dropped
altogether and the one before it is the target; the model trains on what precedes it and is
scored by the same `worker.evaluation.holdout.evaluate` (full ranking, seen items excluded), so the
test targets play no part in the choice.

    python3 bench/quality_tune.py --seeds 2 --jobs 1
    python3 bench/quality_tune.py --dataset video --grid learning_rate=0.006,0.01 --seeds 1
    python3 bench/quality_tune.py --dataset video --baselines --grid hidden_dimension=64

`--dataset` is ml-100k (the default) or video (Amazon Video Games; bench/datasets.py).
`--baselines` also scores the baselines of bench/quality.py (popularity, item-kNN, Markov
chain, ALS) on the same split, so a config's ratio to the best of them is known.

Without --grid it screens SCREEN below (one change from the defaults at a time, then the
combinations). A --grid is the cartesian product of its values over the defaults. Prints a
table, means over seeds; the last line is one JSON object
{"dataset": ..., "split": "validation", "baselines": {...}, "results": [{"config": {...},
"ndcg10": [...], "hr10": [...], "mean_ndcg10": ..., "mean_hr10": ..., "train_seconds": [...]}]}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # one BLAS thread per run; --jobs runs side by side

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import datasets
from connector.model.model import Hyperparameters
from worker.data.interactions import Interactions
from worker.evaluation.holdout import Holdout, evaluate, split_last
from worker.training import fit

Config = dict[str, Any]  # Hyperparameters overrides
SCREEN: list[Config] = [
    {},
    {"learning_rate": 0.006},
    {"learning_rate": 0.01},
    {"learning_rate_schedule": "linear", "learning_rate": 0.003},
    {"learning_rate_schedule": "linear", "learning_rate": 0.006},
    {"learning_rate_schedule": "linear", "learning_rate": 0.01},
    {"epochs": 30},
    {"hidden_dimension": 96},
    {"hidden_dimension": 128},
    {"dropout": 0.2},
    {"dropout": 0.3},
    {"dropout": 0.5},
    {"item_weight_decay": 0.1},
    {"item_weight_decay": 0.3},
    {"recent_items": 0},
    {"recent_items": 10},
    {"mask_seen": False},
    {"sampled_correction": False},  # only where the catalogue is over sampled_candidates
]
_validation: tuple[Interactions, list[Holdout]] | None = None  # set before the workers fork


def validation_split(data: Interactions) -> tuple[Interactions, list[Holdout]]:
    """(training data, holdouts): per user the test target and everything after it are
    dropped, the interaction before it is the target, what precedes it trains."""
    without_test, _ = split_last(data)
    return split_last(without_test)


def run(task: tuple[Config, int]) -> dict[str, float]:
    """Train one config at one seed on the validation split and score it."""
    config, seed = task
    assert _validation is not None
    train, holdouts = _validation
    started = time.perf_counter()
    model = fit.train(train, Hyperparameters(**config), seed)
    seconds = time.perf_counter() - started
    metrics = evaluate(model, holdouts)
    return {"ndcg10": metrics["ndcg@10"], "hr10": metrics["hr@10"], "seconds": seconds}


def baselines(train: Interactions, holdouts: list[Holdout]) -> dict[str, dict[str, float]]:
    """NDCG@10 and HR@10 of bench/quality.py's baselines on the split (ALS with seed 0)."""
    from bench.baselines import ALS, ItemKNN, MarkovChain, MostPopular

    models = {
        "pop": lambda: MostPopular(train),
        "itemknn": lambda: ItemKNN(train),
        "markov": lambda: MarkovChain(train),
        "als": lambda: ALS(train, seed=0),
    }
    results = {}
    for name, make in models.items():
        started = time.perf_counter()
        metrics = evaluate(make(), holdouts)
        results[name] = {
            "ndcg10": round(metrics["ndcg@10"], 4),
            "hr10": round(metrics["hr@10"], 4),
        }
        print(
            f"  baseline {name}: NDCG@10 {results[name]['ndcg10']:.4f} "
            f"HR@10 {results[name]['hr10']:.4f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return results


def label(config: Config) -> str:
    """A short name of the config's differences from the defaults."""
    short = {"learning_rate": "lr", "learning_rate_schedule": "sched", "hidden_dimension": "h"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in sorted(config.items())) or "defaults"


def grid(specs: list[str]) -> list[Config]:
    """The cartesian product of `name=v1,v2` specs, values parsed as the field's type."""
    types = {f.name: type(getattr(Hyperparameters(), f.name)) for f in fields(Hyperparameters)}
    axes = []
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in types:
            raise SystemExit(f"unknown hyperparameter {name!r}; one of {sorted(types)}")
        parse = (lambda text: text.lower() in ("1", "true")) if types[name] is bool else types[name]
        axes.append([(name, parse(value)) for value in values.split(",")])
    return [dict(combination) for combination in itertools.product(*axes)]


def table(rows: list[dict[str, Any]]) -> str:
    """Configs with their per-seed NDCG@10, means and training seconds."""
    lines = [f"{'config':<44} {'NDCG@10 per seed':<24} {'mean':>7} {'HR@10':>7} {'s':>6}"]
    for row in rows:
        seeds = " ".join(f"{value:.4f}" for value in row["ndcg10"])
        lines.append(
            f"{label(row['config']):<44} {seeds:<24} {row['mean_ndcg10']:>7.4f} "
            f"{row['mean_hr10']:>7.4f} {statistics.mean(row['train_seconds']):>6.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=sorted(datasets.LOADERS), default="ml-100k")
    parser.add_argument(
        "--baselines", action="store_true", help="also score the baselines on the split"
    )
    parser.add_argument("--seeds", type=int, default=2, help="training runs per config")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds from this one on")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument(
        "--grid", action="append", default=[], help="name=v1,v2 (repeatable); else SCREEN"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    global _validation
    args = parse_args(argv)
    configs = grid(args.grid) if args.grid else SCREEN
    for config in configs:
        Hyperparameters(**config)  # refuse a bad config before hours of training
    _validation = validation_split(datasets.load(args.dataset))
    print(
        f"{args.dataset} validation split: {len(_validation[0])} interactions for training, "
        f"{len(_validation[1])} users evaluated on their second-to-last rating",
        flush=True,
    )
    baseline_results = baselines(*_validation) if args.baselines else {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(config, seed) for config in configs for seed in seeds]
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = []
        for (config, seed), result in zip(tasks, pool.imap(run, tasks, chunksize=1), strict=True):
            results.append(result)
            print(
                f"  {label(config)} seed {seed}: NDCG@10 {result['ndcg10']:.4f} "
                f"HR@10 {result['hr10']:.4f} ({result['seconds']:.0f} s)",
                flush=True,
            )
    rows = []
    for index, config in enumerate(configs):
        mine = results[index * args.seeds : (index + 1) * args.seeds]
        rows.append(
            {
                "config": config,
                "seeds": list(seeds),
                "ndcg10": [round(r["ndcg10"], 4) for r in mine],
                "hr10": [round(r["hr10"], 4) for r in mine],
                "mean_ndcg10": round(statistics.mean(r["ndcg10"] for r in mine), 4),
                "mean_hr10": round(statistics.mean(r["hr10"] for r in mine), 4),
                "train_seconds": [round(r["seconds"], 1) for r in mine],
            }
        )
    print(table(rows))
    if baseline_results:
        best = max(baseline_results.values(), key=lambda metrics: metrics["ndcg10"])
        for row in rows:
            row["vs_best_baseline"] = round(row["mean_ndcg10"] / best["ndcg10"], 3)
            print(f"{label(row['config']):<44} {row['vs_best_baseline']:.3f}x the best baseline")
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "split": "validation",
                "baselines": baseline_results,
                "results": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
