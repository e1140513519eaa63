"""FULL and UPDATE runs, step by step: data, model, metrics, publish.

FULL trains a new model from the Interactions dataset, measures it on held-out events and
publishes it. UPDATE loads the current version, adds the items that appeared since (from
interactions and the Items dataset), refreshes popularity and item ages, and publishes that
as a new version: seconds instead of a retrain. Both publish through ModelStore, which moves
the current-version pointer only once a version is complete, so a run stopped at any step
leaves serving on the previous version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from connector.model.model import Hyperparameters, Model
from worker.data.interactions import Interactions, code_counts, time_span
from worker.evaluation.holdout import Holdout, evaluable_users, evaluate, hold_out_last
from worker.settings import WorkerSettings
from worker.training import popularity
from worker.training.fit import train
from worker.training.update import add_items

log = logging.getLogger("streamrec.worker")
ShouldStop = Callable[[], bool]
Report = Callable[[str], None]  # one line of progress for a person watching


def _quiet(_line: str) -> None:
    """The default Report: progress goes to the (quiet by default) log only."""


class Stopped(Exception):  # noqa: N818 - control flow, not an error
    """A stop was requested between two steps; nothing was published."""


@dataclass(frozen=True)
class Catalog:
    """What the Items dataset adds: items without interactions, creation times, metadata."""

    items: list[str]
    created: dict[str, int | None]
    metadata: dict[str, dict[str, str]]
    # item_created of the version being replaced (None: there is none): an item's age is
    # kept across versions, and an item it lacks was first seen by this run
    earlier_created: dict[str, int] | None = None
    # Items deleted from the catalogue (a Debezium delete, docs/sources.md): kept in the
    # model if they have interactions, but never served (`item_arrays`).
    retired: frozenset[str] = frozenset()


def hyperparameters(settings: WorkerSettings) -> Hyperparameters:
    """The model's hyperparameters from the worker's settings."""
    return Hyperparameters(
        hidden_dimension=settings.hidden_dimension,
        bptt=settings.bptt,
        recency_mask=settings.recency_mask,
        epochs=settings.training_epochs,
    )


def split_for_evaluation(
    data: Interactions, users: int, seed: int
) -> tuple[np.ndarray, list[Holdout]]:
    """Hold out the last event of up to `users` randomly chosen users with at least two
    events: (the rows training leaves out, the holdouts)."""
    eligible = evaluable_users(data)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, min(users, len(eligible)), replace=False))
    return hold_out_last(data, chosen)


def full_model(
    data: Interactions,
    settings: WorkerSettings,
    catalog: Catalog,
    should_stop: ShouldStop,
    report: Report = _quiet,
) -> tuple[Model, dict[str, np.ndarray]]:
    """Train, evaluate and describe a new model; returns it with its per-item arrays."""
    started = time.monotonic()
    held_out, holdouts = split_for_evaluation(
        data, settings.evaluation_users, settings.training_seed
    )

    def progress(epoch: int, epochs: int, loss: float) -> None:
        log.info("epoch %d/%d loss %.4f", epoch, epochs, loss)
        report(f"epoch {epoch}/{epochs}  loss {loss:.4f}")
        if should_stop():
            raise Stopped

    model = train(
        data,
        hyperparameters(settings),
        settings.training_seed,
        progress,
        excluded=held_out,
        budget_seconds=settings.training_budget_seconds,
    )
    report(f"evaluating on {len(holdouts):,} held-out users")
    metrics = evaluate(model, holdouts) if holdouts else {}  # before add_items: an item seen
    # only as a held-out target must not be placed from that very user's history
    model, _ = add_items(model, data, catalog.items, catalog.metadata)
    model.meta.update(_describe(data, "full", time.monotonic() - started) | {"metrics": metrics})
    return model, item_arrays(model, data, catalog)


def updated_model(
    current: Model, data: Interactions, catalog: Catalog, based_on: str
) -> tuple[Model, dict[str, np.ndarray]]:
    """The current model with new items added and its statistics refreshed."""
    started = time.monotonic()
    model, added = add_items(current, data, catalog.items, catalog.metadata)
    model.meta.update(
        _describe(data, "update", time.monotonic() - started)
        | {"based_on": based_on, "items_added": len(added)}
    )
    return model, item_arrays(model, data, catalog)


def item_arrays(model: Model, data: Interactions, catalog: Catalog) -> dict[str, np.ndarray]:
    """Popularity (overall and per context value) and creation time of every model item,
    published with the version, and which items are retired. A retired item gets no
    popularity and no known age, which serving already reads as "never exploited, never
    explored" (connector/serving/ranking.py), so it leaves every answer with this version."""
    arrays = {
        "item_popularity": popularity.popularity(data, model.items),
        "item_created": popularity.created(
            data, model.items, catalog.created, catalog.earlier_created
        ),
        **popularity.by_context(data, model.items, model.context_values),
    }
    retired = np.array([item in catalog.retired for item in model.items], dtype=bool)
    for name, values in arrays.items():
        if name.startswith("item_popularity"):
            values[retired] = 0
    arrays["item_created"][retired] = popularity.UNKNOWN_TIME
    arrays["item_retired"] = retired.astype(np.uint8)
    return arrays


def _describe(data: Interactions, mode: str, seconds: float) -> dict[str, Any]:
    oldest, newest = time_span(data)
    return {
        "mode": mode,
        "training_seconds": round(seconds, 3),
        "data": {
            "interactions": len(data),
            "users": int(np.count_nonzero(code_counts(data, "user"))),
            "items": int(np.count_nonzero(code_counts(data, "item"))),
            "first_timestamp": oldest if len(data) else None,
            "last_timestamp": newest if len(data) else None,
        },
    }
