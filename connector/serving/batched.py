"""Ranking a batch of users from their index candidates in 2-D numpy operations, for the
precomputed lists' refresh (hundreds of users a call).

candidates.py ranks one user at a time; for a batch that was about twenty small numpy calls
per user, most of the cost of a refresh at 100,000 items (docs/performance-log.md, List
refresh). This module builds the batch's scores in 2-D and ranks every row with the same
kernel as one user (ranking.choose):

- the universe of a row is its candidates (minus the cold items of the exploration window,
  which are ranked once, as cold items) followed by the window, shared by the batch;
- seen items are excluded, shown-and-ignored ones lose IGNORED_IMPRESSION_PENALTY per
  showing;
- exploration, the exploitable items and where the explored ones sit are ranking.choose's;
- scores are the softmax over the row's allowed universe, completed by the tail estimate
  (candidates._tail).

A row this cannot rank the way the per-user path would (too few usable candidates, so that
path would search further; too few exploitable items, so its lists come out short)
comes back as None, and the caller ranks that user alone. Users with a filter or without a
history are never given here. The random draws differ from the per-user path's (one draw
for the batch), everything else is the same; tests/unit/test_batched.py checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connector.serving.ranking import IGNORED_IMPRESSION_PENALTY, ListAsk, Ranked, choose


@dataclass(frozen=True)
class Pairs:
    """(row, column) pairs of a batch, sorted by row then column, with a value each."""

    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray  # float32
    keys: np.ndarray  # row * items + column, sorted

    @classmethod
    def of(
        cls, items: int, columns: Sequence[np.ndarray], values: Sequence[np.ndarray] | None = None
    ) -> Pairs:
        """From one sorted, unique column array per row (and their values: 1 when none)."""
        sizes = [len(c) for c in columns]
        rows = np.repeat(np.arange(len(columns), dtype=np.int64), sizes)
        flat = np.concatenate([*columns, np.zeros(0, np.int64)]).astype(np.int64)
        given = np.ones(len(flat), np.float32)
        if values is not None:
            given = np.concatenate([*values, np.zeros(0, np.float32)]).astype(np.float32)
        return cls(rows, flat, given, rows * items + flat)

    def at(self, columns: np.ndarray, items: int) -> np.ndarray:
        """Per cell of `columns` ((rows, n), -1 for none), the value of its pair, 0 if none."""
        if not len(self.keys):
            return np.zeros(columns.shape, np.float32)
        keys = np.arange(len(columns), dtype=np.int64)[:, None] * items + columns
        keys[columns < 0] = -1
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        result: np.ndarray = np.where(self.keys[at] == keys, self.values[at], 0.0)
        return result.astype(np.float32)

    def scattered(self, positions: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """A (rows, width) array with each pair's value at its column's position
        (`positions[column]`, -1 or beyond the width for none)."""
        result = np.zeros(shape, np.float32)
        at = positions[self.columns]
        inside = (at >= 0) & (at < shape[1])
        result[self.rows[inside], at[inside]] = self.values[inside]
        return result


@dataclass(frozen=True)
class Batch:
    """What the batch's rows are ranked from."""

    items: int  # in the catalogue
    indexed: int  # items in the index (a row with them all needs no further search)
    candidates: np.ndarray  # (rows, k) columns from the index, -1 where none
    scores: np.ndarray  # (rows, k) their scores
    seen: Pairs  # excluded items
    shown: Pairs  # shown and passed over, value: how often
    sample: np.ndarray  # (rows, samples) scores of the tail sample


@dataclass(frozen=True)
class Window:
    """The cold items the batch's exploration looks at."""

    columns: np.ndarray  # (width,) model columns
    positions: np.ndarray  # per item, its position in the window (-1 or >= width: outside)
    scores: np.ndarray  # (rows, width)
    unproven: np.ndarray  # (width,) no interaction data
    sample_outside: np.ndarray  # (samples,) which tail-sample items are outside the window


def rank_batch(batch: Batch, window: Window | None, ask: ListAsk) -> list[Ranked | None]:
    """Each row's top `ask.count` items with up to `ask.slots` explored ones, those of the
    window's cold items that pass the row's exploration floor (window None: no exploration),
    or None where the row must be ranked alone."""
    count = ask.count
    rows, k = batch.candidates.shape
    width = len(window.columns) if window is not None else 0
    if k + width < count:
        return [None] * rows  # too few items to fill a row: each is ranked alone
    found = batch.candidates >= 0
    seen = batch.seen.at(batch.candidates, batch.items) > 0
    times = batch.shown.at(batch.candidates, batch.items)
    usable = (found & ~seen & (times == 0)).sum(axis=1)
    ok = (usable >= count) | (found.sum(axis=1) >= batch.indexed)
    valid = found
    if window is not None:
        position = window.positions[np.maximum(batch.candidates, 0)]
        valid = found & ~((position >= 0) & (position < len(window.columns)))
    exploit = _masked(batch.scores - IGNORED_IMPRESSION_PENALTY * times, valid & ~seen)
    cold = _cold_scores(batch, window) if window is not None else np.zeros((rows, 0), np.float32)
    allowed = np.hstack([exploit, cold])
    is_cold = np.arange(k + width) >= k
    unproven = np.zeros(k + width, bool)
    if window is not None:
        unproven[k:] = window.unproven
    choice = choose(allowed, is_cold, unproven, ask)
    ok &= choice.lengths == count
    chosen = np.maximum(choice.positions, 0)
    universe = _universe(batch.candidates, window)
    probabilities = _probabilities(batch, window, allowed, valid, chosen)
    picked = np.take_along_axis(universe, chosen, axis=1)
    return [
        Ranked(picked[r], probabilities[r], choice.explored[r]) if ok[r] else None
        for r in range(rows)
    ]


def _masked(scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.where(keep, scores, -np.inf).astype(np.float32)
    return result


def _cold_scores(batch: Batch, window: Window) -> np.ndarray:
    """The window's scores per row, less the ignored-impression penalty; -inf where seen."""
    shape = window.scores.shape
    seen = batch.seen.scattered(window.positions, shape) > 0
    times = batch.shown.scattered(window.positions, shape)
    return _masked(window.scores - IGNORED_IMPRESSION_PENALTY * times, ~seen)


def _universe(candidates: np.ndarray, window: Window | None) -> np.ndarray:
    if window is None:
        return candidates
    cold = np.broadcast_to(window.columns, (len(candidates), len(window.columns)))
    return np.hstack([candidates, cold])


def _probabilities(
    batch: Batch, window: Window | None, allowed: np.ndarray, valid: np.ndarray, chosen: np.ndarray
) -> np.ndarray:
    """candidates._probabilities per row: the softmax of the chosen over the allowed
    universe, plus the estimated share of the allowed items outside it."""
    finite = np.isfinite(allowed)
    present = finite.any(axis=1)
    top = np.where(present, np.max(np.where(finite, allowed, -np.inf), axis=1), 0.0)
    exact = np.exp(allowed - top[:, None].astype(np.float32)).sum(axis=1)
    tail = _tail(batch, window, valid, top, finite.sum(axis=1))
    chosen_scores = np.take_along_axis(allowed, chosen, axis=1)
    result: np.ndarray = np.exp(chosen_scores - top[:, None].astype(np.float32)) / (exact + tail)[
        :, None
    ].astype(np.float32)
    return np.where(present[:, None], result, 0.0).astype(np.float32)


def _tail(
    batch: Batch, window: Window | None, valid: np.ndarray, top: np.ndarray, ranked: np.ndarray
) -> np.ndarray:
    """candidates._tail per row: the allowed items outside the universe times the mean of
    exp(score - top) over the sampled items outside it too."""
    rows = len(valid)
    seen = np.bincount(batch.seen.rows, minlength=rows)
    rest = batch.items - seen - ranked
    lowest = np.min(np.where(valid, batch.scores, np.inf), axis=1)
    keep = batch.sample < lowest[:, None]
    if window is not None:
        keep &= window.sample_outside[None, :]
    kept = keep.sum(axis=1)
    total = np.where(keep, np.exp(batch.sample - top[:, None].astype(np.float32)), 0.0).sum(axis=1)
    usable = (rest > 0) & valid.any(axis=1) & (kept > 0)
    result: np.ndarray = np.where(usable, rest * total / np.maximum(kept, 1), 0.0)
    return result
