"""The figures of `streamrec evaluate`: our model against the baselines on held-out events,
overall, by user history length, and for coverage and popularity bias.

Two sources. A dataset group's current model version is measured on the very split its
FULL run used (the same data range, `evaluation_users` and seed give the same held-out
users), so its figures reproduce the metrics stored with the version and the baselines are
trained on exactly what our model saw. `--movielens` runs the benchmark's leave-last-out
protocol (bench/quality.py) on MovieLens-100K, training our model here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connector.keys import Keys
from connector.model.model import Hyperparameters, Model
from connector.redis_client import connect
from connector.stores.model_versions import ModelStore
from worker.data.interactions import Interactions
from worker.data.movielens import load_ml100k
from worker.evaluation.baselines import ALS, ItemKNN, MarkovChain, MostPopular
from worker.evaluation.holdout import Holdout, split_last
from worker.evaluation.metrics import DEPTH, MetricAccumulator, per_user
from worker.evaluation.recommender import Recommender, top_k
from worker.exceptions import ModelNotFoundError
from worker.settings import WorkerSettings
from worker.training import fit
from worker.training.pipeline import split_for_evaluation

LENGTH_EDGES = (1, 5, 10, 20, 50, 100)  # history-length buckets: 1-4, 5-9, ..., 100+
DECILES = 10
TOP = 10  # the list length popularity bias is measured on
Trainer = Callable[[Interactions], Recommender]


@dataclass
class ModelFigures:
    """One model's figures on the held-out users."""

    name: str
    metrics: dict[str, float]
    by_length: dict[str, dict[str, float]]  # bucket -> ndcg@10, hr@10, users
    popularity_deciles: list[float]  # share of top-10 slots per popularity decile (0: top)
    mean_popularity_percentile: float  # of recommended items; 100 = the most popular item
    gini: float  # of how often each catalog item is recommended in the top 10


@dataclass
class Report:
    """Everything the report shows."""

    title: str
    source: str
    split: str
    training_rows: int
    users: int
    items: int
    models: list[ModelFigures] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bucket_label(length: int) -> str:
    """The history-length bucket of a user with `length` events before the target."""
    lower = max(edge for edge in LENGTH_EDGES if edge <= max(length, 1))
    following = [edge for edge in LENGTH_EDGES if edge > lower]
    return f"{lower}-{following[0] - 1}" if following else f"{lower}+"


def measure(
    name: str, model: Recommender, holdouts: Sequence[Holdout], popularity: dict[str, float]
) -> ModelFigures:
    """Rank the whole catalog for each held-out user (seen items excluded) and compute the
    figures; `popularity` maps items to their training interaction counts."""
    columns = {item: column for column, item in enumerate(model.items)}
    accumulator = MetricAccumulator(len(model.items))
    counts = np.zeros(len(model.items), dtype=np.int64)
    ndcg: list[np.ndarray] = []
    hits: list[np.ndarray] = []
    lengths: list[int] = []
    for start in range(0, len(holdouts), 256):
        batch = holdouts[start : start + 256]
        scores = model.score_histories([h.history for h in batch])
        seen = [np.unique([columns[e.item] for e in h.history if e.item in columns]) for h in batch]
        ranked = top_k(scores, DEPTH, exclude=[s.astype(np.int64) for s in seen])
        targets = np.array([columns.get(h.target, -1) for h in batch], dtype=np.int64)
        accumulator.add(ranked, [np.array([t]) for t in targets])
        values = per_user(_hits(ranked, targets), np.ones(len(batch), dtype=np.int64))
        ndcg.append(values["ndcg@10"])
        hits.append(values["hr@10"])
        lengths.extend(len(h.history) for h in batch)
        top = ranked[:, :TOP]
        counts += np.bincount(top[top >= 0], minlength=len(model.items))
    shares, percentile, gini = _bias(model.items, counts, popularity)
    by_length = _by_length(np.concatenate(ndcg), np.concatenate(hits), lengths)
    return ModelFigures(name, accumulator.result(), by_length, shares, percentile, gini)


def _hits(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    padded = np.pad(ranked, ((0, 0), (0, max(0, DEPTH - ranked.shape[1]))), constant_values=-1)
    hit: np.ndarray = (padded[:, :DEPTH] == targets[:, None]) & (targets[:, None] >= 0)
    return hit


def _by_length(
    ndcg: np.ndarray, hits: np.ndarray, lengths: list[int]
) -> dict[str, dict[str, float]]:
    labels = np.array([bucket_label(length) for length in lengths])
    ordered = [bucket_label(edge) for edge in LENGTH_EDGES]
    return {
        label: {
            "users": float((labels == label).sum()),
            "ndcg@10": float(ndcg[labels == label].mean()),
            "hr@10": float(hits[labels == label].mean()),
        }
        for label in ordered
        if (labels == label).any()
    }


def _bias(
    items: list[str], counts: np.ndarray, popularity: dict[str, float]
) -> tuple[list[float], float, float]:
    """Share of recommendations per popularity decile of the catalog, mean popularity
    percentile of recommended items, and the Gini coefficient of recommendation counts."""
    pops = np.array([popularity.get(item, 0.0) for item in items])
    order = np.argsort(-pops, kind="stable")
    rank = np.empty(len(items), dtype=np.int64)
    rank[order] = np.arange(len(items))
    decile = np.minimum(rank * DECILES // max(len(items), 1), DECILES - 1)
    total = max(int(counts.sum()), 1)
    shares = [float(counts[decile == d].sum() / total) for d in range(DECILES)]
    percentile = float(((1 - rank / max(len(items) - 1, 1)) * 100 * counts).sum() / total)
    return shares, percentile, gini(counts)


def gini(counts: np.ndarray) -> float:
    """0 when every item is recommended equally often, towards 1 when a few take it all."""
    values = np.sort(counts.astype(np.float64))
    if values.sum() == 0:
        return 0.0
    n = len(values)
    cumulative = np.cumsum(values)
    return float((n + 1 - 2 * (cumulative / cumulative[-1]).sum()) / n)


def baselines(notes: list[str]) -> dict[str, Trainer]:
    """The baselines by name; ALS only when the optional `implicit` package is installed."""
    chosen: dict[str, Trainer] = {
        "pop": MostPopular,
        "itemknn": ItemKNN,
        "markov": MarkovChain,
    }
    if importlib.util.find_spec("implicit") is not None:
        chosen["als"] = lambda data: ALS(data, seed=0)
    else:
        notes.append("ALS skipped: the optional `implicit` package is not installed.")
    return chosen


def compare(
    report: Report, ours: Recommender, training_data: Interactions, holdouts: list[Holdout]
) -> Report:
    """Measure our model and every baseline on the same held-out users."""
    counts = np.bincount(training_data.item, minlength=len(training_data.items))
    popularity = {item: float(n) for item, n in zip(training_data.items, counts, strict=True)}
    report.models.append(measure("streamrec", ours, holdouts, popularity))
    for name, trainer in baselines(report.notes).items():
        report.models.append(measure(name, trainer(training_data), holdouts, popularity))
    return report


def movielens_report(cache_dir: Path, max_interactions: int, epochs: int, seed: int) -> Report:
    """Leave-last-out on MovieLens-100K (its earliest `max_interactions` ratings when > 0)."""
    data = load_ml100k(cache_dir)
    if 0 < max_interactions < len(data):
        earliest = np.argsort(data.timestamp, kind="stable")[:max_interactions]
        keep = np.zeros(len(data), dtype=bool)
        keep[earliest] = True
        data = data.select(keep).compact()
    train, holdouts = split_last(data)
    ours = fit.train(train, Hyperparameters(epochs=epochs), seed)
    report = Report(
        "MovieLens-100K",
        f"MovieLens-100K ({len(data):,} ratings), our model trained here ({epochs} epochs)",
        "leave-last-out: every user's latest rating held out",
        len(train),
        len(holdouts),
        len(data.items),
    )
    return compare(report, ours, train, holdouts)


def group_report(settings: WorkerSettings, data: Interactions) -> Report:
    """The current model version of the settings' group, on the split its FULL run used."""
    store = ModelStore(connect(settings), Keys(settings.dataset_group))
    version = store.current_version()
    if version is None:
        raise ModelNotFoundError(
            f"no model version in {settings.dataset_group!r}: run `streamrec train` first"
        )
    meta = store.meta(version)
    notes: list[str] = []
    data = _as_trained(data, meta.get("data", {}), notes)
    held_out, holdouts = split_for_evaluation(
        data, settings.evaluation_users, settings.training_seed
    )
    train = data.without(held_out)
    report = Report(
        f"dataset group {settings.dataset_group!r}, model version {version}",
        f"the Interactions dataset of {settings.dataset_group!r} ({len(data):,} interactions)",
        f"the FULL run's: last event of up to {settings.evaluation_users:,} random users",
        len(train),
        len(holdouts),
        len(data.items),
        notes=notes,
    )
    return compare(report, Model.from_artifacts(store.load(version)), train, holdouts)


def _as_trained(data: Interactions, trained: dict[str, object], notes: list[str]) -> Interactions:
    """The rows up to the version's last training timestamp; a note when the count differs
    from the training run's (the held-out users may then differ slightly)."""
    last = trained.get("last_timestamp")
    if isinstance(last, int):
        data = data.select(data.timestamp <= last)
    if trained.get("interactions") != len(data):
        notes.append(
            f"the dataset now holds {len(data):,} interactions up to the version's last "
            f"training timestamp, the FULL run read {trained.get('interactions')}: the split "
            "may differ slightly from the one the stored metrics come from."
        )
    return data
