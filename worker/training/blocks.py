"""The rows a FULL run trains on, read a block of whole users at a time.

Why blocks: the training data may be mapped from disk (worker/data/prepared.py) and larger
than memory should hold, so training never builds the windows of a whole epoch. Each block
(about BLOCK_ROWS rows, whole users) is copied into memory, cut into windows and shuffled on
its own; an epoch visits the blocks in a random order. A dataset of up to BLOCK_ROWS rows is
one block, which is the whole-epoch shuffle of before.

Held-out rows (evaluation targets) are left out as blocks are read, and items seen only in
them are not in the model, exactly as if the rows had been removed first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from worker.data.interactions import Interactions, release_columns

BLOCK_ROWS = 1_000_000  # rows whose windows are built and shuffled together


@dataclass(frozen=True)
class TimeRange:
    """The oldest and newest timestamps of the training rows."""

    oldest: int
    newest: int


class TrainingRows:
    """`data` (sorted by user, time, arrival) without the `excluded` rows, with its items
    renumbered to those that occur in what is left."""

    def __init__(self, data: Interactions, excluded: np.ndarray | None = None) -> None:
        self.data = data
        self.excluded = np.zeros(0, np.int64) if excluded is None else np.sort(excluded)
        self.blocks = list(_blocks(data.user, BLOCK_ROWS))
        counts, users, oldest, newest = self._scan()
        present = counts > 0
        self.item_counts = counts[present]  # rows per kept item, in the new numbering
        self.items = [data.items[code] for code in np.flatnonzero(present).tolist()]
        self._item_map = (np.cumsum(present) - 1).astype(np.int32)
        self.rows = int(counts.sum())
        self.predictions = self.rows - users  # every row but a user's first is a target
        self.time_range = TimeRange(oldest, newest)

    def read(self, block: slice, since: int | None = None) -> Interactions:
        """The block's rows in memory, held-out rows (and rows before `since`) left out,
        items in the new numbering."""
        rows = self._read_kept(block)
        if since is not None:
            rows = rows.select(rows.timestamp >= since)
        return replace(rows, item=self._item_map[rows.item], items=self.items)

    def timestamps_sample(self, most: int = 1_000_000) -> np.ndarray:
        """Up to `most` timestamps spread evenly over the rows, to place a time cut."""
        step = max(1, len(self.data) // most)
        sample = np.array(self.data.timestamp[::step])
        release_columns(self.data)
        return sample

    def _scan(self) -> tuple[np.ndarray, int, int, int]:
        """(rows per item, users with rows, oldest and newest timestamp) of the kept rows,
        a block at a time."""
        counts = np.zeros(len(self.data.items), np.int64)
        users, oldest, newest = 0, np.iinfo(np.int64).max, np.iinfo(np.int64).min
        for block in self.blocks:
            rows = self._read_kept(block)
            counts += np.bincount(rows.item, minlength=len(counts))
            users += len(np.unique(rows.user))
            if len(rows):
                oldest = min(oldest, int(rows.timestamp.min()))
                newest = max(newest, int(rows.timestamp.max()))
        return counts, users, oldest if users else 0, newest if users else 0

    def _read_kept(self, block: slice) -> Interactions:
        """The block's kept rows in memory, items in the data's numbering."""
        rows = self.data.select(block)  # views
        keep = np.ones(len(rows), bool)
        inside = self.excluded[
            np.searchsorted(self.excluded, block.start) : np.searchsorted(self.excluded, block.stop)
        ]
        keep[inside - block.start] = False
        selected = rows.select(keep)
        release_columns(self.data)
        return selected


def _blocks(user: np.ndarray, size: int) -> Iterator[slice]:
    """Consecutive row ranges of about `size` rows that never split a user (a user with
    more rows is a block alone); `user` is sorted."""
    start, rows = 0, len(user)
    while start < rows:
        end = min(rows, start + size)
        if end < rows:
            end = int(np.searchsorted(user, user[end], side="left"))
            if end <= start:  # one user holds the whole stretch
                end = int(np.searchsorted(user, user[start], side="right"))
        yield slice(start, end)
        start = end
