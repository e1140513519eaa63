"""What exploration costs in held-out accuracy, and where in a list its items cost least.

Trains our model on a leave-last-out split (bench/datasets.py), serves it as the API does
(connector.serving.recommend.recommend_many, every user's seen items excluded), and marks
--new-share of the items as really new: drawn from the rarest quarter (new items have little
interaction data by definition), created a day before the newest interaction; every other
item is older than the cut-off. The same users are then answered with exploration weight 0
and with --weight, and the --weight lists are laid out three ways: explored items in the
middle of equal stretches of the list (2, 6, 9 of 10), at the end of each stretch (4, 7, 10:
what ranking.interleave does) and all at the end of the list (8, 9, 10). NDCG@10 and HR@10
of each, and how many slots went to exploration.

    python bench/exploration_cost.py [--dataset ml-100k|video] [--new-share 0.03] [--weight 0.3]
                                     [--also-weights 0.1,0.2]

Prints a table; the last line is one JSON object {"dataset", "new_share", "weight",
"ndcg10": {layout: value}, "hr10": {...}, "explored_slots": share}.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import LOADERS, load
from connector.model.model import Hyperparameters
from connector.serving.current_model import SECONDS_PER_DAY, ServingModel
from connector.serving.ranking import Exploration, Ranked
from connector.serving.recommend import recommend_many
from worker import popularity, training
from worker.evaluation import Holdout, split_last
from worker.metrics import DEPTH, MetricAccumulator

COUNT = 10
Layout = Callable[[int, int], np.ndarray]  # (slots, explored) -> bool per slot


def middle_of_stretches(total: int, explored: int) -> np.ndarray:
    """The layout before this benchmark: the middle of each equal stretch."""
    positions = np.zeros(total, bool)
    if explored:
        spots = np.floor((np.arange(explored) + 0.5) * total / explored).astype(int)
        positions[np.minimum(spots, total - 1)] = True
    return positions


def end_of_stretches(total: int, explored: int) -> np.ndarray:
    """The last slot of each equal stretch."""
    positions = np.zeros(total, bool)
    if explored:
        ends = np.ceil((np.arange(explored) + 1) * total / explored - 1e-9).astype(int)
        positions[np.clip(ends - 1, 0, total - 1)] = True
    return positions


def end_of_list(total: int, explored: int) -> np.ndarray:
    """All explored items after all exploited ones."""
    positions = np.zeros(total, bool)
    positions[total - explored :] = True
    return positions


LAYOUTS: dict[str, Layout] = {
    "middle of stretches": middle_of_stretches,
    "end of stretches": end_of_stretches,
    "end of list": end_of_list,
}


def laid_out(ranked: Ranked, layout: Layout) -> np.ndarray:
    """The list's columns with its explored items placed by `layout` (same items)."""
    exploit, explore = ranked.columns[~ranked.explored], ranked.columns[ranked.explored]
    positions = layout(len(ranked.columns), len(explore))
    columns = np.empty(len(ranked.columns), np.int64)
    columns[positions], columns[~positions] = explore, exploit
    return columns


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
) -> tuple[dict[str, MetricAccumulator], int]:
    """Metric accumulators per layout (one, "weight 0", when weight is 0); explored slots."""
    rng = np.random.default_rng(seed)
    names = ["weight 0"] if weight == 0 else list(LAYOUTS)
    accumulators = {name: MetricAccumulator(len(served.model.items)) for name in names}
    explored = 0
    for start in range(0, len(holdouts), 256):
        batch = holdouts[start : start + 256]
        ranked = recommend_many(served, [h.history for h in batch], COUNT, Exploration(weight), rng)
        targets = [np.array([served.columns.get(h.target, -1)]) for h in batch]
        explored += sum(int(r.explored.sum()) for r in ranked)
        for name, accumulator in accumulators.items():
            layout = LAYOUTS.get(name)
            lists = [r.columns if layout is None else laid_out(r, layout) for r in ranked]
            accumulator.add(_padded(lists), targets)
    return accumulators, explored


def _padded(lists: list[np.ndarray]) -> np.ndarray:
    out = np.full((len(lists), DEPTH), -1, np.int64)
    for row, columns in enumerate(lists):
        out[row, : len(columns)] = columns
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=sorted(LOADERS), default="ml-100k")
    parser.add_argument("--new-share", type=float, default=0.03)
    parser.add_argument("--weight", type=float, default=Exploration().weight)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--also-weights", default="", help="more weights, laid out as chosen")
    args = parser.parse_args(argv)
    data = load(args.dataset)
    train_data, holdouts = split_last(data)
    print(f"{args.dataset}: training on {len(train_data):,} events, {len(holdouts):,} users")
    model = training.train(train_data, Hyperparameters(), args.seed)
    served, new = serving_model(train_data, model, args.new_share, args.seed)
    plain, _ = measure(served, holdouts, 0.0, args.seed)
    exploring, explored = measure(served, holdouts, args.weight, args.seed)
    results = {name: acc.result() for name, acc in {**plain, **exploring}.items()}
    for weight in [float(w) for w in args.also_weights.split(",") if w.strip()]:
        more, _ = measure(served, holdouts, weight, args.seed)
        results[f"weight {weight:g}, end of stretches"] = more["end of stretches"].result()
    share = explored / (COUNT * len(holdouts))
    print(f"{new:,} of {len(model.items):,} items new; {share:.1%} of slots explored")
    print(f"{'layout':<22} {'NDCG@10':>8} {'HR@10':>8} {'vs weight 0':>12}")
    base = results["weight 0"]["ndcg@10"]
    for name, metrics in results.items():
        ratio = metrics["ndcg@10"] / base if base else float("nan")
        print(f"{name:<22} {metrics['ndcg@10']:>8.4f} {metrics['hr@10']:>8.4f} {ratio:>12.3f}")
    summary = {
        "dataset": args.dataset,
        "new_share": args.new_share,
        "weight": args.weight,
        "ndcg10": {name: round(m["ndcg@10"], 4) for name, m in results.items()},
        "hr10": {name: round(m["hr@10"], 4) for name, m in results.items()},
        "explored_slots": round(share, 4),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
