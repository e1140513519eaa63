"""Leave-last-out evaluation: hold out each user's latest interaction and rank all items.

This is the protocol of the quality benchmark and of the metrics stored with every model
version, so one implementation serves both. For every user with at least 2 interactions the
last one (by timestamp, ties in arrival order: the order Interactions rows already have) is the
target; everything before it is training data and the history the model scores from. The
model ranks its whole catalog, the items already in the history are excluded (recommending
what the user just saw is not a success), and a target the model does not know is a miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from connector.model.history import HistoryEntry
from worker.data.interactions import Interactions, history_entries
from worker.evaluation.metrics import DEPTH, MetricAccumulator
from worker.evaluation.recommender import Recommender, top_k

MIN_EVALUATED_LENGTH = 2  # a user needs a history of at least one event besides the target
SCORES_PER_BATCH = 1 << 22  # scores held at once in evaluation: 16 MB of float32


@dataclass(frozen=True)
class Holdout:
    """One evaluated user: the events the model sees, and the item it should rank high."""

    user: str
    history: list[HistoryEntry]
    target: str


def evaluable_users(data: Interactions) -> np.ndarray:
    """The users (codes) with at least MIN_EVALUATED_LENGTH interactions."""
    result: np.ndarray = np.flatnonzero(np.diff(data.user_bounds()) >= MIN_EVALUATED_LENGTH)
    return result


def hold_out_last(
    data: Interactions, users: np.ndarray | None = None
) -> tuple[np.ndarray, list[Holdout]]:
    """(the rows of each evaluated user's last event, one Holdout per such user): training
    leaves those rows out. Evaluated: `users` (sorted codes, each evaluable), or every
    evaluable user."""
    bounds = data.user_bounds()
    evaluated = evaluable_users(data) if users is None else users
    last_rows = bounds[evaluated + 1] - 1
    holdouts = [
        Holdout(
            user=data.users[user],
            history=history_entries(data, slice(int(bounds[user]), int(last))),
            target=data.items[data.item[last]],
        )
        for user, last in zip(evaluated, last_rows, strict=True)
    ]
    return last_rows, holdouts


def split_last(
    data: Interactions, users: np.ndarray | None = None
) -> tuple[Interactions, list[Holdout]]:
    """(training data without each evaluated user's last row, one Holdout per such user),
    as `hold_out_last` chooses them."""
    last_rows, holdouts = hold_out_last(data, users)
    return data.without(last_rows), holdouts


def evaluate(
    model: Recommender, holdouts: Sequence[Holdout], batch_size: int = 256
) -> dict[str, float]:
    """Personalize's metrics (worker.evaluation.metrics) of `model` on `holdouts`, by full ranking.

    Scores are computed `batch_size` users at a time, fewer on a catalogue so large that
    their scores would pass SCORES_PER_BATCH floats, so memory stays bounded however many
    users and items there are.
    """
    if not holdouts:
        raise ValueError("no users to evaluate: every user has fewer than 2 interactions")
    batch_size = min(batch_size, max(1, SCORES_PER_BATCH // max(1, len(model.items))))
    columns = {item: column for column, item in enumerate(model.items)}
    accumulator = MetricAccumulator(len(model.items))
    for batch in _batches(holdouts, batch_size):
        scores = model.score_histories([holdout.history for holdout in batch])
        _check_shape(scores, len(batch), len(model.items))
        seen = [_columns(columns, (entry.item for entry in h.history)) for h in batch]
        ranked = top_k(scores, DEPTH, exclude=seen)
        accumulator.add(ranked, [np.array([columns.get(h.target, -1)]) for h in batch])
    return accumulator.result()


def _batches(holdouts: Sequence[Holdout], size: int) -> Iterator[Sequence[Holdout]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, not {size}")
    for start in range(0, len(holdouts), size):
        yield holdouts[start : start + size]


def _columns(columns: dict[str, int], items: Iterable[str]) -> np.ndarray:
    """The score columns of the given item ids that the model knows."""
    found = [columns[item] for item in items if item in columns]
    return np.unique(np.array(found, dtype=np.int64))


def _check_shape(scores: np.ndarray, users: int, items: int) -> None:
    """Refuses a score matrix of the wrong shape, which would silently misrank."""
    if scores.shape != (users, items):
        raise ValueError(f"model returned scores of shape {scores.shape}, not {(users, items)}")
