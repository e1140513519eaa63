"""Per-item statistics published with every model version: recency-weighted popularity and
item age.

Serving needs both without touching the training data: popularity answers users with no
history (cold start) and ranks new items, and item age (CREATION_TIMESTAMP, else the first
interaction) bounds exploration to recent items (`exploration_item_age_cut_off`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from worker.interactions import Interactions

DEFAULT_HALF_LIFE_SECONDS = 7 * 24 * 3600.0
UNKNOWN_TIME = -1  # item_created for an item with neither a creation time nor interactions


def popularity(
    data: Interactions,
    items: Sequence[str],
    half_life_seconds: float = DEFAULT_HALF_LIFE_SECONDS,
) -> np.ndarray:
    """Each item's interaction count, each interaction weighted 2^(-age / half-life), age
    measured back from the newest interaction in `data` (float32, one per `items`)."""
    rows = _rows_of(data, items)
    if len(data) == 0:
        return np.zeros(len(items), np.float32)
    age = (data.timestamp.max() - data.timestamp).astype(np.float64)
    weight = np.exp2(-age / half_life_seconds)
    per_data_item = np.bincount(data.item, weights=weight, minlength=len(data.items))
    result: np.ndarray = np.where(rows >= 0, per_data_item[np.maximum(rows, 0)], 0.0)
    return result.astype(np.float32)


def created(
    data: Interactions,
    items: Sequence[str],
    creation_timestamps: Mapping[str, int | None] | None = None,
) -> np.ndarray:
    """Each item's creation time in seconds: CREATION_TIMESTAMP when the catalog has it, else
    its first interaction, else UNKNOWN_TIME (int64, one per `items`)."""
    first = np.full(len(data.items), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, data.item, data.timestamp)
    rows = _rows_of(data, items)
    result = np.full(len(items), UNKNOWN_TIME, dtype=np.int64)
    seen = rows >= 0
    result[seen] = first[rows[seen]]
    result[result == np.iinfo(np.int64).max] = UNKNOWN_TIME
    for index, item in enumerate(items):
        stamp = (creation_timestamps or {}).get(item)
        if stamp is not None:
            result[index] = int(stamp)
    return result


def _rows_of(data: Interactions, items: Sequence[str]) -> np.ndarray:
    """For each of `items`, its code in `data` or -1."""
    codes = {item: code for code, item in enumerate(data.items)}
    return np.array([codes.get(item, -1) for item in items], dtype=np.int64)
