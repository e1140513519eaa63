"""Recommendation quality of our model against the classic baselines on MovieLens-100K.

The protocol is leave-last-out (worker.evaluation): per user with at least 2 ratings the
latest one (ties in file order) is the target and everything before it is training data and
history; every model ranks all items with the user's seen items excluded; HR@10 and NDCG@10
are averaged over users. Our model is trained `--seeds` times and averaged; the baselines are
deterministic, except ALS, which runs once with a fixed seed.

    pip install -e '.[bench]'     # implicit (for ALS) and scipy
    python bench/quality.py [--seeds 3] [--first-seed 0] [--models pop,itemknn,markov,als,streamrec]

The data comes from the recbole wheel (bench/movielens.py) and is cached under
.streamrec/cache/datasets/. Prints one table; the last line is one JSON object
{"dataset": "ml-100k", "ndcg10": {model: value}, "hr10": {model: value}}, with our model
under "streamrec".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baselines import ALS, ItemKNN, MarkovChain, MostPopular
from bench.movielens import load_ml100k
from connector.model.model import Hyperparameters
from worker import training
from worker.evaluation import Holdout, evaluate, split_last
from worker.interactions import Interactions
from worker.recommender import Recommender

Trainer = Callable[[Interactions, int], Recommender]  # (training data, seed) -> model
MODELS = ("pop", "itemknn", "markov", "als", "streamrec")
BASELINE_SEED = 0


@dataclass
class Result:
    """One model's figures, one entry per training run (several seeds for our model)."""

    name: str
    ndcg10: list[float] = field(default_factory=list)
    hr10: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)


def baselines() -> dict[str, Trainer]:
    """The baselines by name; only ALS reads the seed."""
    return {
        "pop": lambda data, seed: MostPopular(data),
        "itemknn": lambda data, seed: ItemKNN(data),
        "markov": lambda data, seed: MarkovChain(data),
        "als": lambda data, seed: ALS(data, seed=seed),
    }


def streamrec_trainer() -> Trainer:
    """Our model's training function, with the defaults `streamrec train` uses."""

    def trainer(data: Interactions, seed: int) -> Recommender:
        model: Recommender = training.train(data, Hyperparameters(), seed)
        return model

    return trainer


def measure(
    name: str, trainer: Trainer, seeds: list[int], train: Interactions, holdouts: list[Holdout]
) -> Result:
    """Trains once per seed and evaluates each model on the held-out targets."""
    result = Result(name)
    for seed in seeds:
        started = time.perf_counter()
        model = trainer(train, seed)
        result.train_seconds.append(time.perf_counter() - started)
        metrics = evaluate(model, holdouts)
        result.ndcg10.append(metrics["ndcg@10"])
        result.hr10.append(metrics["hr@10"])
        if len(seeds) > 1:
            print(
                f"  {name} seed {seed}: NDCG@10 {metrics['ndcg@10']:.4f} "
                f"HR@10 {metrics['hr@10']:.4f}",
                flush=True,
            )
    return result


def table(results: list[Result]) -> str:
    """The figures as an aligned text table, means over seeds."""
    lines = [f"{'model':<10} {'NDCG@10':>8} {'HR@10':>8} {'train s':>8} {'runs':>5}"]
    for r in results:
        lines.append(
            f"{r.name:<10} {statistics.mean(r.ndcg10):>8.4f} {statistics.mean(r.hr10):>8.4f} "
            f"{statistics.mean(r.train_seconds):>8.2f} {len(r.ndcg10):>5}"
        )
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    """The machine-readable last line."""
    return json.dumps(
        {
            "dataset": "ml-100k",
            "ndcg10": {r.name: round(statistics.mean(r.ndcg10), 4) for r in results},
            "hr10": {r.name: round(statistics.mean(r.hr10), 4) for r in results},
        }
    )


def trainers(
    names: list[str], seeds: int, first_seed: int = 0
) -> list[tuple[str, Trainer, list[int]]]:
    """(name, trainer, seeds to run) for every requested model that is available."""
    chosen = []
    for name in names:
        if name == "streamrec":
            chosen.append((name, streamrec_trainer(), list(range(first_seed, first_seed + seeds))))
        else:  # deterministic, or (ALS) run once with a fixed seed
            chosen.append((name, baselines()[name], [BASELINE_SEED]))
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3, help="training runs of our model")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="our model's seeds start here (robustness)"
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}"
    )
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown or args.seeds < 1:
        parser.error(f"unknown models {unknown}" if unknown else "--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_ml100k()
    train, holdouts = split_last(data)
    print(
        f"ml-100k: {len(data)} interactions, {len(data.items)} items; "
        f"{len(train)} for training, {len(holdouts)} users evaluated",
        flush=True,
    )
    results = [
        measure(name, trainer, seeds, train, holdouts)
        for name, trainer, seeds in trainers(args.models, args.seeds, args.first_seed)
    ]
    print(table(results))
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
