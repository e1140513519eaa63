"""UPDATE mode: bring items the model has not seen into it, without retraining.

A new item's embedding is set from the sequences it appears in: for the user states just
before each of its interactions, the item embedding the model expects next (the mean
embedding under its predicted distribution), averaged: the new item lands among the items
those users go to. An item with no interactions yet takes the mean embedding of
known items sharing its categorical metadata values (same genre, same brand), else the mean
of all items. Its bias starts at the median bias of known items, so it neither floods lists
nor disappears from them before the next FULL retrain learns it properly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from connector.model.history import HistoryEntry
from connector.model.model import Model
from worker.data.interactions import (
    Interactions,
    code_counts,
    history_entries,
    release_columns,
    row_blocks,
)


def add_items(
    model: Model,
    data: Interactions,
    catalog: Sequence[str] = (),
    metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Model, list[str]]:
    """The model with every item of `data` and `catalog` it lacks added; and those items."""
    known = set(model.items)
    seen = [
        data.items[code] for code in np.flatnonzero(code_counts(data, "item"))
    ]  # rows, not vocabulary
    new_items = [item for item in dict.fromkeys([*seen, *catalog]) if item not in known]
    if not new_items:
        return model, []
    embeddings = _from_sequences(model, data, new_items)
    fallback = _from_metadata(model, new_items, metadata or {})
    rows = np.array([embeddings.get(item, fallback[item]) for item in new_items], np.float32)
    params = dict(model.params)
    params["item_embeddings"] = np.concatenate([params["item_embeddings"], rows])
    bias = np.full(len(new_items), np.median(params["item_bias"][1:]), np.float32)
    params["item_bias"] = np.concatenate([params["item_bias"], bias])
    updated = Model(
        items=[*model.items, *new_items],
        event_types=model.event_types,
        context_values=model.context_values,
        params=params,
        hyperparameters=model.hyperparameters,
        meta=dict(model.meta),
    )
    return updated, new_items


def _from_sequences(model: Model, data: Interactions, items: list[str]) -> dict[str, np.ndarray]:
    """Mean query vector of the states preceding each interaction with one of `items`,
    computed STATES_PER_BATCH interactions at a time (a user state holds the GRU's
    activations of its whole window)."""
    rows, owners = _interactions_of(data, items)
    sums = np.zeros((len(items), model.hyperparameters.hidden_dimension), np.float64)
    bounds = data.user_bounds()
    for start in range(0, len(rows), STATES_PER_BATCH):
        batch = rows[start : start + STATES_PER_BATCH]
        histories = [_before(data, bounds, row, model.hyperparameters.bptt) for row in batch]
        expected = _expected_embeddings(model, model.user_states(histories))
        np.add.at(sums, owners[start : start + STATES_PER_BATCH], expected)
    release_columns(data)
    counts = np.bincount(owners, minlength=len(items))
    return {items[i]: (sums[i] / counts[i]).astype(np.float32) for i in np.flatnonzero(counts)}


def _interactions_of(data: Interactions, items: list[str]) -> tuple[list[int], np.ndarray]:
    """(rows of interactions with one of `items` that are not a user's first, the index
    in `items` of each), found a block of rows at a time."""
    wanted = {item: index for index, item in enumerate(items)}
    owner_of = np.array([wanted.get(item, -1) for item in data.items], np.int64)
    rows: list[int] = []
    for block in row_blocks(data):
        users = data.user[block]
        starts = np.ones(len(users), bool)  # a row whose user differs from the row before
        starts[1:] = users[1:] != users[:-1]
        if block.start > 0:
            starts[0] = users[0] != data.user[block.start - 1]
        found = np.flatnonzero((owner_of[data.item[block]] >= 0) & ~starts)
        rows.extend((block.start + found).tolist())
    release_columns(data)
    return rows, owner_of[data.item[np.array(rows, np.int64)]] if rows else np.zeros(0, np.int64)


def _before(data: Interactions, bounds: np.ndarray, row: int, steps: int) -> list[HistoryEntry]:
    """The (at most `steps`) events of the row's user before it."""
    start = max(int(bounds[data.user[row]]), row - steps)
    return history_entries(data, slice(start, row))


STATES_PER_BATCH = 1024  # interactions whose states are computed together in UPDATE
SCORES_PER_CHUNK = 1 << 24  # float32 scores held at once: 64 MB
SHARPEN = 0.5  # temperature of the predicted distribution: lean on the likeliest next items


def _expected_embeddings(model: Model, states: np.ndarray) -> np.ndarray:
    """For each state, the mean item embedding under the model's predicted next-item
    distribution (sharpened): where the model thinks those users go next, at the scale of
    real item embeddings. (The raw query vectors would not do: every query shares a large
    common part, so their mean scores high for every user.) Scored a few states at a time:
    at most SCORES_PER_CHUNK scores at once, whatever the catalogue's size."""
    table = model.params["item_embeddings"][1:]
    chunk = max(1, SCORES_PER_CHUNK // max(1, len(table)))
    result = np.empty((len(states), table.shape[1]), np.float64)
    for start in range(0, len(states), chunk):
        # float32 and in place: the exponentials are most of UPDATE's time; shifted by the
        # row's maximum they lie in (0, 1], and their sum is taken in float64.
        weights = model.scores(states[start : start + chunk])
        weights /= SHARPEN
        weights -= weights.max(axis=1, keepdims=True)
        np.exp(weights, out=weights)
        total = weights.sum(axis=1, keepdims=True, dtype=np.float64)
        result[start : start + chunk] = (weights @ table) / total
    return result


def _from_metadata(
    model: Model, items: list[str], metadata: Mapping[str, Mapping[str, str]]
) -> dict[str, np.ndarray]:
    """Mean embedding of known items sharing a metadata value with each item; else of all."""
    table = model.params["item_embeddings"][1:]
    overall = table.mean(axis=0)
    by_value: dict[tuple[str, str], list[int]] = {}
    for row, item in enumerate(model.items):
        for field, value in (metadata.get(item) or {}).items():
            by_value.setdefault((field, value), []).append(row)
    result = {}
    for item in items:
        rows = [
            row
            for field, value in (metadata.get(item) or {}).items()
            for row in by_value.get((field, value), [])
        ]
        result[item] = table[rows].mean(axis=0) if rows else overall
    return result
