"""UPDATE mode: bring items the model has not seen into it, without retraining.

A new item's embedding is set from the sequences it appears in: the mean query vector of the
user states just before each of its interactions, since training pulls an item's embedding
toward exactly those queries. An item with no interactions yet takes the mean embedding of
known items sharing its categorical metadata values (same genre, same brand), else the mean
of all items. Its bias starts at the median bias of known items, so it neither floods lists
nor disappears from them before the next FULL retrain learns it properly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from connector.model.model import Model
from worker.interactions import Interactions, history_entries


def add_items(
    model: Model,
    data: Interactions,
    catalog: Sequence[str] = (),
    metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Model, list[str]]:
    """The model with every item of `data` and `catalog` it lacks added; and those items."""
    known = set(model.items)
    new_items = [item for item in dict.fromkeys([*data.items, *catalog]) if item not in known]
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
    """Mean query vector of the states preceding each interaction with one of `items`."""
    wanted = {item: index for index, item in enumerate(items)}
    histories, owners = [], []
    for _, rows in data.sequences():
        for row in range(rows.start + 1, rows.stop):
            owner = wanted.get(data.items[data.item[row]])
            if owner is not None:
                start = max(rows.start, row - model.hyperparameters.bptt)
                histories.append(history_entries(data, slice(start, row)))
                owners.append(owner)
    if not histories:
        return {}
    states = model.user_states(histories)
    sums = np.zeros((len(items), states.shape[1]), np.float64)
    np.add.at(sums, owners, states)
    counts = np.bincount(owners, minlength=len(items))
    return {items[i]: (sums[i] / counts[i]).astype(np.float32) for i in np.flatnonzero(counts)}


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
