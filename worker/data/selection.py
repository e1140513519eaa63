"""Personalize's training-data choices, as pure functions of an Interactions object.

Applied in Personalize's order: event types, then the event value threshold, then the user
history-length percentiles, which are computed over what the first two filters left (a
user's history is what the model would train on). `check_minimum` refuses data below
Personalize's minimum, so a model is never trained on too little to mean anything.

History-length bounds: `np.quantile` (linear interpolation) over the per-user row counts of
users that still have rows. A user is kept when `low <= length <= high`: both bounds are
inclusive, so min 0.0 and max 1.0 keep everybody, and users of equal length are always kept
or dropped together (a tie is never split to hit an exact share). With the default max of
0.99 and lengths 1..100, the bound is 99.01: the user with 100 rows is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from worker.data.interactions import Interactions, code_counts
from worker.exceptions import NotEnoughDataError
from worker.settings import WorkerSettings

MIN_INTERACTIONS = 1000
MIN_ACTIVE_USERS = 25  # users with at least MIN_USER_INTERACTIONS rows
MIN_USER_INTERACTIONS = 2


@dataclass(frozen=True)
class SelectionSummary:
    """Rows dropped by each filter, and the history-length bounds used, for logging."""

    rows_read: int
    dropped_event_type: int
    dropped_event_value: int
    dropped_short_history: int
    dropped_long_history: int
    users_dropped_short: int
    users_dropped_long: int
    min_history_length: float
    max_history_length: float
    rows_kept: int

    @classmethod
    def of(
        cls,
        rows_read: int,
        dropped: tuple[int, int],
        lengths: np.ndarray,
        bounds: tuple[float, float],
    ) -> SelectionSummary:
        """From the rows read, the rows the event type and value filters `dropped`, the
        history `lengths` after them (per user) and the history-length `bounds`."""
        low, high = bounds
        short, long = (lengths > 0) & (lengths < low), lengths > high
        return cls(
            rows_read=rows_read,
            dropped_event_type=dropped[0],
            dropped_event_value=dropped[1],
            dropped_short_history=int(lengths[short].sum()),
            dropped_long_history=int(lengths[long].sum()),
            users_dropped_short=int(short.sum()),
            users_dropped_long=int(long.sum()),
            min_history_length=low,
            max_history_length=high,
            rows_kept=int(lengths[(lengths >= low) & (lengths <= high)].sum()),
        )


def by_event_type(data: Interactions, event_types: Sequence[str]) -> Interactions:
    """Rows of the chosen event types; an empty choice keeps every row."""
    if not event_types:
        return data
    chosen = set(event_types)
    wanted = [code for code, name in enumerate(data.event_types) if name in chosen]
    return data.select(np.isin(data.event_type, wanted))


def by_event_value(data: Interactions, threshold: float | None) -> Interactions:
    """Rows whose EVENT_VALUE is at least `threshold` (rows without a value are dropped);
    no threshold keeps every row."""
    if threshold is None:
        return data
    return data.select(data.event_value >= threshold)  # NaN compares False: dropped


def history_lengths(data: Interactions) -> np.ndarray:
    """Row count of every user (zero for users whose rows were all filtered out)."""
    return code_counts(data, "user")


def length_bounds(lengths: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The `low` and `high` quantiles of the non-zero history lengths (0, 0 if none)."""
    active = lengths[lengths > 0]
    if not len(active):
        return 0.0, 0.0
    found = np.quantile(active, [low, high])
    return float(found[0]), float(found[1])


def by_history_length(
    data: Interactions, low: float, high: float
) -> tuple[Interactions, tuple[float, float]]:
    """Rows of users whose history length is within the low..high percentile bounds
    (inclusive), and the bounds."""
    lengths = history_lengths(data)
    bounds = length_bounds(lengths, low, high)
    keep_user = (lengths >= bounds[0]) & (lengths <= bounds[1])
    return data.select(keep_user[data.user]), bounds


def check_minimum(data: Interactions) -> None:
    """Raise NotEnoughDataError below 1,000 interactions or 25 users with 2+ interactions."""
    active = int(np.count_nonzero(history_lengths(data) >= MIN_USER_INTERACTIONS))
    if len(data) >= MIN_INTERACTIONS and active >= MIN_ACTIVE_USERS:
        return
    raise not_enough_data(len(data), active)


def not_enough_data(interactions: int, active: int) -> NotEnoughDataError:
    """The error for a dataset of `interactions` rows and `active` users with 2+ of them."""
    return NotEnoughDataError(
        f"not enough training data: {interactions:,} interactions and {active:,} users with at "
        f"least {MIN_USER_INTERACTIONS} interactions; training needs at least "
        f"{MIN_INTERACTIONS:,} interactions and {MIN_ACTIVE_USERS} such users "
        "(after the event type, event value and history-length filters)"
    )


def select(data: Interactions, settings: WorkerSettings) -> tuple[Interactions, SelectionSummary]:
    """The settings' filters applied in order; the rows kept and what each filter dropped."""
    typed = by_event_type(data, settings.training_event_types)
    valued = by_event_value(typed, settings.training_event_value_threshold)
    lengths = history_lengths(valued)
    kept, (low, high) = by_history_length(
        valued,
        settings.min_user_history_length_percentile,
        settings.max_user_history_length_percentile,
    )
    dropped = (len(data) - len(typed), len(typed) - len(valued))
    return kept, SelectionSummary.of(len(data), dropped, lengths, (low, high))
