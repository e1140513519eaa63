"""Per-item statistics published with every model version: recency-weighted popularity and
item age.

Serving needs both without touching the training data: popularity answers users with no
history (cold start) and ranks new items, and item age (CREATION_TIMESTAMP, else the first
interaction) bounds exploration to recent items (`exploration_item_age_cut_off`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from worker.data.interactions import Interactions, newest_timestamp, release_columns, row_blocks

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
    per_data_item = np.zeros(len(data.items), np.float64)
    newest = newest_timestamp(data)
    for block in row_blocks(data):
        weight = _weights(data.timestamp[block], newest, half_life_seconds)
        per_data_item += np.bincount(data.item[block], weights=weight, minlength=len(data.items))
    release_columns(data)
    result: np.ndarray = np.where(rows >= 0, per_data_item[np.maximum(rows, 0)], 0.0)
    return result.astype(np.float32)


def by_context(
    data: Interactions,
    items: Sequence[str],
    context_values: Mapping[str, Sequence[str]],
    half_life_seconds: float = DEFAULT_HALF_LIFE_SECONDS,
) -> dict[str, np.ndarray]:
    """Popularity per context value, for a cold-start user whose request gives a context:
    `item_popularity_<FIELD>` has one row per item and one column per value of
    `context_values[FIELD]` (the model's vocabulary; column 0, "absent", stays 0)."""
    if len(data) == 0:
        return {}
    newest = newest_timestamp(data)
    item_row = _item_rows(data, items)
    result = {}
    for name, codes in data.context.items():
        vocabulary = list(context_values.get(name, ()))
        if not vocabulary:
            continue
        columns = _columns(data.context_values[name], vocabulary)
        matrix = np.zeros((len(items), len(vocabulary)), np.float64)
        for block in row_blocks(data):
            weight = _weights(data.timestamp[block], newest, half_life_seconds)
            row, column = item_row[data.item[block]], columns[codes[block]]
            usable = (row >= 0) & (column > 0)
            np.add.at(matrix, (row[usable], column[usable]), weight[usable])
        result[f"item_popularity_{name}"] = matrix.astype(np.float32)
    release_columns(data)
    return result


def _weights(timestamps: np.ndarray, newest: int, half_life_seconds: float) -> np.ndarray:
    """2^(-age / half-life) of each interaction, age measured back from `newest`."""
    weight: np.ndarray = np.exp2(-(newest - timestamps).astype(np.float64) / half_life_seconds)
    return weight


def _item_rows(data: Interactions, items: Sequence[str]) -> np.ndarray:
    """For each item code of the data, its row in `items` (or -1)."""
    position = {item: row for row, item in enumerate(items)}
    return np.array([position.get(item, -1) for item in data.items], dtype=np.int64)


def _columns(data_values: Sequence[str], vocabulary: Sequence[str]) -> np.ndarray:
    """For each value code of the data, its column in `vocabulary` (0 when unknown)."""
    position = {value: column for column, value in enumerate(vocabulary)}
    return np.array([position.get(value, 0) for value in data_values], dtype=np.int64)


def created(
    data: Interactions,
    items: Sequence[str],
    creation_timestamps: Mapping[str, int | None] | None = None,
    earlier: Mapping[str, int] | None = None,
) -> np.ndarray:
    """Each item's creation time in seconds, from the evidence there is: CREATION_TIMESTAMP
    when the catalog has it, else its first interaction, else its time in the `earlier`
    version (item_created of the version this run replaces), else, for an item that version
    did not have, the newest interaction of `data`: the system first saw it (a PutItems)
    since that version, and event time had reached that point. Without an earlier version
    (a first FULL, after a catalogue import) such an item has no evidence: UNKNOWN_TIME, and
    exploration leaves it out (docs/model.md, Exploration). int64, one per `items`."""
    first = np.full(len(data.items), np.iinfo(np.int64).max, dtype=np.int64)
    for block in row_blocks(data):
        np.minimum.at(first, data.item[block], data.timestamp[block])
    release_columns(data)
    rows = _rows_of(data, items)
    result = np.full(len(items), UNKNOWN_TIME, dtype=np.int64)
    seen = rows >= 0
    result[seen] = first[rows[seen]]
    result[result == np.iinfo(np.int64).max] = UNKNOWN_TIME
    now = newest_timestamp(data) if len(data) else UNKNOWN_TIME
    for index, item in enumerate(items):
        stamp = (creation_timestamps or {}).get(item)
        if stamp is not None:
            result[index] = int(stamp)
        elif result[index] == UNKNOWN_TIME and earlier is not None:
            result[index] = earlier.get(item, now)
    return result


def _rows_of(data: Interactions, items: Sequence[str]) -> np.ndarray:
    """For each of `items`, its code in `data` or -1."""
    codes = {item: code for code, item in enumerate(data.items)}
    return np.array([codes.get(item, -1) for item in items], dtype=np.int64)
