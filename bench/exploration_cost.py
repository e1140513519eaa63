"""What exploration costs in held-out accuracy, by weight and by the width of its relevance gate.

Trains our model on a leave-last-out split (bench/datasets.py; --split validation, the
default, holds out each user's second-to-last item and trains on what came before it, so
settings are chosen without looking at the test items), serves it as the API does
(connector.serving.recommend.recommend_many, every user's seen items excluded), and marks
--new-share of the items as really new: drawn from the rarest quarter (new items have little
interaction data by definition), created a day before the newest interaction; every other
item is older than the cut-off. The same users are then answered with exploration weight 0
and with each of --weights, for each gate width of --gates (ranking.EXPLORATION_GATE; the
served one when not given): NDCG@10 and HR@10 of each, and the share of slots explored.

    python bench/exploration_cost.py [--dataset ml-100k|video] [--split validation|test]
                                     [--new-share 0.03] [--weights 0.1,0.3,0.6,1]
                                     [--gates 4,6,8]

Prints a table; the last line is one JSON object {"dataset", "split", "new_share",
"ndcg10": {row: value}, "hr10": {...}, "explored_slots": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import LOADERS, load
from connector.model.model import Hyperparameters
from connector.serving import ranking
from connector.serving.current_model import SECONDS_PER_DAY, ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from worker.evaluation.holdout import Holdout, split_last
from worker.evaluation.metrics import DEPTH, MetricAccumulator
from worker.training import fit, popularity

COUNT = 10


def serving_model(train_data, model, new_share: float, seed: int) -> tuple[ServingModel, int]:  # type: ignore[no-untyped-def]
    """The trained model as served, with `new_share` of its items new; how many are."""
    rng = np.random.default_rng(seed)
    counts = popularity.popularity(train_data, model.items)
    latest = int(train_data.timestamp.max())
    rare = np.flatnonzero(counts <= np.quantile(counts, 0.25))
    chosen = rng.choice(rare, min(len(rare), round(new_share * len(model.items))), replace=False)
    created = np.full(len(model.items), latest - 400 * SECONDS_PER_DAY, np.int64)
    created[chosen] = latest - SECONDS_PER_DAY
    return ServingModel("bench", model, counts, created, {}, latest), len(chosen)


def measure(
    served: ServingModel, holdouts: list[Holdout], weight: float, seed: int
) -> tuple[dict[str, float], float]:
    """NDCG@10 and HR@10 of the answers with `weight`, and the share of slots explored."""
    rng = np.random.default_rng(seed)
    accumulator = MetricAccumulator(len(served.model.items))
    explored = 0
    for start in range(0, len(holdouts), 256):
        batch = holdouts[start : start + 256]
        ranked = recommend_many(served, [h.history for h in batch], COUNT, Exploration(weight), rng)
        targets = [np.array([served.columns.get(h.target, -1)]) for h in batch]
        explored += sum(int(r.explored.sum()) for r in ranked)
        accumulator.add(_padded([r.columns for r in ranked]), targets)
    return accumulator.result(), explored / (COUNT * len(holdouts))


def _padded(lists: list[np.ndarray]) -> np.ndarray:
    out = np.full((len(lists), DEPTH), -1, np.int64)
    for row, columns in enumerate(lists):
        out[row, : len(columns)] = columns
    return out


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=sorted(LOADERS), default="ml-100k")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--new-share", type=float, default=0.03)
    parser.add_argument("--weights", default=f"0.1,{Exploration().weight},0.6,1")
    parser.add_argument("--gates", default=str(ranking.EXPLORATION_GATE))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_data, holdouts = split_last(load(args.dataset))
    if args.split == "validation":
        train_data, holdouts = split_last(train_data)
    print(f"{args.dataset} ({args.split}): training on {len(train_data):,} events, ", end="")
    print(f"{len(holdouts):,} users")
    model = fit.train(train_data, Hyperparameters(), args.seed)
    served, new = serving_model(train_data, model, args.new_share, args.seed)
    print(f"{new:,} of {len(model.items):,} items new")
    results = {"weight 0": measure(served, holdouts, 0.0, args.seed)}
    served_gate = ranking.EXPLORATION_GATE
    for gate in _floats(args.gates):
        ranking.EXPLORATION_GATE = gate
        for weight in _floats(args.weights):
            results[f"gate {gate:g}, weight {weight:g}"] = measure(
                served, holdouts, weight, args.seed
            )
    ranking.EXPLORATION_GATE = served_gate
    print(f"{'answer':<24} {'NDCG@10':>8} {'HR@10':>8} {'vs weight 0':>12} {'explored':>9}")
    base = results["weight 0"][0]["ndcg@10"]
    for name, (metrics, share) in results.items():
        ratio = metrics["ndcg@10"] / base if base else float("nan")
        print(
            f"{name:<24} {metrics['ndcg@10']:>8.4f} {metrics['hr@10']:>8.4f} "
            f"{ratio:>12.3f} {share:>9.1%}"
        )
    summary = {
        "dataset": args.dataset,
        "split": args.split,
        "new_share": args.new_share,
        "ndcg10": {name: round(m["ndcg@10"], 4) for name, (m, _) in results.items()},
        "hr10": {name: round(m["hr@10"], 4) for name, (m, _) in results.items()},
        "explored_slots": {name: round(share, 4) for name, (_, share) in results.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
