"""What every model offers to evaluation and serving: scores for all items given histories.

One small Protocol, so that offline evaluation, the benchmark baselines and our own model are
ranked by the same code: a model maps a batch of user histories (the HistoryEntry lists the
connector keeps in Redis, or their offline twins from worker.data.interactions.history_entries)
to a dense score matrix over its items. Ranking and "already seen" filtering then happen
once, here, in `top_k`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from connector.model.history import HistoryEntry

NO_ITEM = -1  # slot of a top-k list that has no item (fewer eligible items than k)


class Recommender(Protocol):
    """A model that scores every item of its catalog for each history it is given."""

    items: list[str]  # item ids, in score-column order

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        """float32 scores of shape (len(histories), len(items)); higher ranks first."""
        ...


def top_k(scores: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> np.ndarray:
    """Column indices of the k best scores per row, best first: int64 (rows, min(k, items)).

    `exclude[row]` lists columns that row must not return (items the user has already
    seen). Excluded columns and scores of -inf or NaN are never returned; when fewer than k
    columns are eligible, the remaining slots hold NO_ITEM. argpartition keeps this O(items)
    per row, which matters for full ranking over tens of thousands of items.
    """
    masked = _masked(scores, exclude)
    k = min(k, masked.shape[1])
    if k <= 0:
        return np.full((masked.shape[0], max(k, 0)), NO_ITEM, dtype=np.int64)
    best = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    best_scores = np.take_along_axis(masked, best, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    ranked = np.take_along_axis(best, order, axis=1).astype(np.int64)
    ranked[np.take_along_axis(best_scores, order, axis=1) == -np.inf] = NO_ITEM
    return ranked


def _masked(scores: np.ndarray, exclude: list[np.ndarray] | None) -> np.ndarray:
    """A float copy of `scores` with excluded columns and NaN set to -inf."""
    masked = np.array(scores, dtype=np.float32, ndmin=2)
    masked[np.isnan(masked)] = -np.inf
    if exclude is not None:
        if len(exclude) != masked.shape[0]:
            raise ValueError(f"exclude has {len(exclude)} rows, scores have {masked.shape[0]}")
        rows = np.repeat(np.arange(len(exclude)), [len(columns) for columns in exclude])
        if len(rows):
            masked[rows, np.concatenate(exclude).astype(np.int64)] = -np.inf
    return masked
