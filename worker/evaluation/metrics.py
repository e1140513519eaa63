"""Personalize's offline solution metrics, computed from ranked top-k lists with numpy.

Every model version is stored with these figures so versions can be compared and a worse one
refused; the benchmark reports the same ones. Relevance is binary (an item is either one of
the user's held-out items or not) and the definitions are the standard ones:

- precision@k: relevant items in the top k, divided by k;
- hr@k (hit rate): 1 when at least one relevant item is in the top k;
- mrr@25: 1 / rank of the first relevant item in the top 25, 0 when there is none;
- ndcg@k: DCG = sum over hits of 1 / log2(rank + 1), divided by the DCG of an ideal list
  that puts min(k, #relevant) relevant items first;
- coverage: the fraction of catalog items that appear in at least one user's top 25.

Per-user figures are averaged over users. Accumulating over batches keeps the memory bounded
when the catalog is large: only the top-25 lists of one batch are held at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEPTH = 25  # the longest cut-off of any metric; ranked lists are read to this depth
NDCG_CUTS = (5, 10, 25)
PRECISION_CUTS = (5, 10, 25)
HIT_CUTS = (10,)
METRIC_NAMES = (
    "coverage",
    "mrr@25",
    *(f"ndcg@{k}" for k in NDCG_CUTS),
    *(f"precision@{k}" for k in PRECISION_CUTS),
    *(f"hr@{k}" for k in HIT_CUTS),
)

# DISCOUNT[r] is the gain of a hit at 0-based rank r; IDEAL_DCG[n] the DCG of n hits first.
DISCOUNT = 1.0 / np.log2(np.arange(2, DEPTH + 2, dtype=np.float64))
IDEAL_DCG = np.concatenate(([0.0], np.cumsum(DISCOUNT)))


class MetricAccumulator:
    """Sums of the per-user metrics over batches, and the set of items recommended."""

    def __init__(self, catalog_size: int) -> None:
        self.catalog_size = catalog_size
        self.users = 0
        self.sums = dict.fromkeys(METRIC_NAMES[1:], 0.0)
        self.recommended = np.zeros(catalog_size, dtype=bool)

    def add(self, ranked: np.ndarray, relevant: Sequence[np.ndarray]) -> None:
        """Adds one batch: `ranked` (users, >= 25 or all items) holds catalog column indices,
        best first, negative where a slot is empty; `relevant[u]` the columns of user u's
        held-out items, where a negative index stands for a relevant item outside the
        catalog (it counts in the ideal DCG but can never be hit)."""
        ranked = _to_depth(np.asarray(ranked, dtype=np.int64))
        if len(relevant) != ranked.shape[0]:
            raise ValueError(f"{ranked.shape[0]} ranked lists but {len(relevant)} relevant sets")
        counts = np.array([len(items) for items in relevant], dtype=np.int64)
        if (counts == 0).any():
            raise ValueError("every evaluated user needs at least one relevant item")
        hits = _hits(ranked, relevant)
        for name, values in per_user(hits, counts).items():
            self.sums[name] += float(values.sum())
        self.users += ranked.shape[0]
        self.recommended[ranked[(ranked >= 0) & (ranked < self.catalog_size)]] = True

    def result(self) -> dict[str, float]:
        """The averages, as a JSON-serialisable dict in METRIC_NAMES order."""
        if self.users == 0:
            raise ValueError("no users were evaluated")
        coverage = float(self.recommended.mean()) if self.catalog_size else 0.0
        averages = {name: total / self.users for name, total in self.sums.items()}
        return {"coverage": coverage, **averages}


def ranking_metrics(
    ranked: np.ndarray, relevant: Sequence[np.ndarray], catalog_size: int
) -> dict[str, float]:
    """The metrics of one batch of users (see MetricAccumulator.add for the arguments)."""
    accumulator = MetricAccumulator(catalog_size)
    accumulator.add(ranked, relevant)
    return accumulator.result()


def per_user(hits: np.ndarray, relevant_counts: np.ndarray) -> dict[str, np.ndarray]:
    """Each user's metric values from a (users, 25) hit matrix and their relevant counts."""
    values = {"mrr@25": _reciprocal_rank(hits)}
    gains = np.cumsum(hits * DISCOUNT, axis=1)
    for k in NDCG_CUTS:
        values[f"ndcg@{k}"] = gains[:, k - 1] / IDEAL_DCG[np.minimum(relevant_counts, k)]
    for k in PRECISION_CUTS:
        values[f"precision@{k}"] = hits[:, :k].sum(axis=1, dtype=np.float64) / k
    for k in HIT_CUTS:
        values[f"hr@{k}"] = (hits[:, :k].sum(axis=1) > 0).astype(np.float64)
    return values


def _reciprocal_rank(hits: np.ndarray) -> np.ndarray:
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def _to_depth(ranked: np.ndarray) -> np.ndarray:
    """The first DEPTH columns, padded with empty slots when the lists are shorter (a
    catalog of fewer than 25 items)."""
    if ranked.ndim != 2:
        raise ValueError(f"ranked lists must be a 2-D array, not {ranked.ndim}-D")
    missing = DEPTH - ranked.shape[1]
    if missing <= 0:
        return ranked[:, :DEPTH]
    return np.pad(ranked, ((0, 0), (0, missing)), constant_values=-1)


def _hits(ranked: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """(users, DEPTH) booleans: is the item at this rank one of the user's relevant ones."""
    width = max(len(items) for items in relevant)
    padded = np.full((len(relevant), width), -1, dtype=np.int64)
    for row, items in enumerate(relevant):
        padded[row, : len(items)] = items
    matches: np.ndarray = (ranked[:, :, None] == padded[:, None, :]).any(axis=2)
    return matches & (ranked >= 0)
