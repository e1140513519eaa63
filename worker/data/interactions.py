"""The training data in memory: interactions as columns of integer codes, one row per event.

Columnar numpy arrays rather than a list of objects because training reads millions of rows
and slices them per user; strings are kept once, in vocabularies, and rows refer to them by
index. Rows are sorted by user, then timestamp, ties kept in arrival order (the order of the
Interactions dataset), so each user's sequence is one contiguous slice.

Code 0 of `event_types` and of every context vocabulary means "absent", so a row without an
event type or a context value still has a valid index.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connector.model.history import ABSENT, HistoryEntry
from worker.data.mapped import release

ROW_BLOCK = 1_000_000  # rows a whole-data statistic reads at a time


@dataclass(frozen=True)
class Interactions:
    """Events as parallel arrays, sorted by (user, timestamp, arrival)."""

    user: np.ndarray  # int32 index into users
    item: np.ndarray  # int32 index into items
    timestamp: np.ndarray  # int64 seconds since the epoch
    event_type: np.ndarray  # int32 index into event_types (0: none)
    event_value: np.ndarray  # float32, NaN where the event has no value
    context: dict[str, np.ndarray]  # field -> int32 index into context_values[field] (0: none)
    users: list[str]
    items: list[str]
    event_types: list[str]  # event_types[0] == ABSENT
    context_values: dict[str, list[str]]  # each list starts with ABSENT

    def __len__(self) -> int:
        return len(self.user)

    def user_bounds(self) -> np.ndarray:
        """Start offsets of each user's rows, plus len(self) at the end (users in order)."""
        starts = np.searchsorted(self.user, np.arange(len(self.users) + 1, dtype=np.int64))
        release_columns(self)
        return starts.astype(np.int64)

    def sequences(self) -> Iterator[tuple[int, slice]]:
        """(user index, row slice) for every user with at least one row."""
        bounds = self.user_bounds()
        for user in range(len(self.users)):
            if bounds[user + 1] > bounds[user]:
                yield user, slice(int(bounds[user]), int(bounds[user + 1]))

    def select(self, mask: np.ndarray | slice) -> Interactions:
        """The rows where `mask` holds (a copy), or of a slice (views); vocabularies
        unchanged (codes stay valid)."""
        return Interactions(
            user=self.user[mask],
            item=self.item[mask],
            timestamp=self.timestamp[mask],
            event_type=self.event_type[mask],
            event_value=self.event_value[mask],
            context={name: codes[mask] for name, codes in self.context.items()},
            users=self.users,
            items=self.items,
            event_types=self.event_types,
            context_values=self.context_values,
        )

    def without(self, rows: np.ndarray) -> Interactions:
        """The data without the rows numbered `rows` (a copy in memory)."""
        keep = np.ones(len(self), dtype=bool)
        keep[rows] = False
        return self.select(keep)

    def compact(self) -> Interactions:
        """The same rows with users and items that have no row left dropped from the
        vocabularies (after `select`), so a model never carries untrained item rows."""
        users, user = np.unique(self.user, return_inverse=True)
        items, item = np.unique(self.item, return_inverse=True)
        return Interactions(
            user=user.astype(np.int32),
            item=item.astype(np.int32),
            timestamp=self.timestamp,
            event_type=self.event_type,
            event_value=self.event_value,
            context=self.context,
            users=[self.users[code] for code in users],
            items=[self.items[code] for code in items],
            event_types=self.event_types,
            context_values=self.context_values,
        )


@dataclass
class _Vocabulary:
    """Strings to dense codes, in first-seen order."""

    values: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)

    def code(self, value: str) -> int:
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self.values)
            self.values.append(value)
        return found


def from_rows(
    rows: Iterable[Mapping[str, Any]], context_fields: Iterable[str] = ()
) -> Interactions:
    """Interactions from dataset rows (USER_ID, ITEM_ID, TIMESTAMP, optional EVENT_TYPE,
    EVENT_VALUE and the named categorical context fields), in arrival order."""
    fields = list(context_fields)
    users, items = _Vocabulary(), _Vocabulary()
    types = _Vocabulary([ABSENT], {ABSENT: 0})
    contexts = {name: _Vocabulary([ABSENT], {ABSENT: 0}) for name in fields}
    columns: dict[str, list[Any]] = {
        key: [] for key in ("user", "item", "ts", "type", "value", *fields)
    }
    for row in rows:
        columns["user"].append(users.code(str(row["USER_ID"])))
        columns["item"].append(items.code(str(row["ITEM_ID"])))
        columns["ts"].append(int(row["TIMESTAMP"]))
        columns["type"].append(types.code(_text(row.get("EVENT_TYPE"))))
        value = row.get("EVENT_VALUE")
        columns["value"].append(np.nan if value is None else float(value))
        for name in fields:
            columns[name].append(contexts[name].code(_text(row.get(name))))
    return _sorted(columns, fields, users, items, types, contexts)


def _text(value: Any) -> str:
    return ABSENT if value is None else str(value)


def _sorted(
    columns: dict[str, list[Any]],
    fields: list[str],
    users: _Vocabulary,
    items: _Vocabulary,
    types: _Vocabulary,
    contexts: dict[str, _Vocabulary],
) -> Interactions:
    user = np.asarray(columns["user"], dtype=np.int32)
    timestamp = np.asarray(columns["ts"], dtype=np.int64)
    order = np.lexsort((np.arange(len(user)), timestamp, user))  # stable: arrival breaks ties
    return Interactions(
        user=user[order],
        item=np.asarray(columns["item"], dtype=np.int32)[order],
        timestamp=timestamp[order],
        event_type=np.asarray(columns["type"], dtype=np.int32)[order],
        event_value=np.asarray(columns["value"], dtype=np.float32)[order],
        context={name: np.asarray(columns[name], dtype=np.int32)[order] for name in fields},
        users=users.values,
        items=items.values,
        event_types=types.values,
        context_values={name: vocab.values for name, vocab in contexts.items()},
    )


def history_entries(data: Interactions, rows: slice) -> list[HistoryEntry]:
    """The HistoryEntry list of a slice of the training data (one user's rows, in order)."""
    entries = []
    for row in range(rows.start, rows.stop):
        event_type = data.event_types[data.event_type[row]]
        context = {
            name: data.context_values[name][codes[row]]
            for name, codes in data.context.items()
            if codes[row] != 0
        }
        entries.append(
            HistoryEntry(
                item=data.items[data.item[row]],
                event_type=None if event_type == ABSENT else event_type,
                timestamp=int(data.timestamp[row]),
                context=context,
            )
        )
    return entries


def row_blocks(data: Interactions) -> Iterator[slice]:
    """The rows of `data` in consecutive slices of ROW_BLOCK rows: a statistic over all
    rows reads a slice at a time, so its temporaries do not grow with the data."""
    size = ROW_BLOCK
    for start in range(0, len(data), size):
        yield slice(start, min(start + size, len(data)))


def newest_timestamp(data: Interactions) -> int:
    """The newest timestamp of the data (0 for no rows)."""
    return time_span(data)[1]


def time_span(data: Interactions) -> tuple[int, int]:
    """The oldest and newest timestamps (0, 0 for no rows), read a block at a time: the
    data is sorted by user, not time."""
    oldest, newest = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for block in row_blocks(data):
        stamps = data.timestamp[block]
        oldest, newest = min(oldest, int(stamps.min())), max(newest, int(stamps.max()))
    release_columns(data)
    return (oldest, newest) if len(data) else (0, 0)


def code_counts(data: Interactions, column: str) -> np.ndarray:
    """Rows per code of the "user" or "item" column (one entry per vocabulary value), read
    a block at a time."""
    codes, size = (data.user, len(data.users)) if column == "user" else (data.item, len(data.items))
    counts = np.zeros(size, np.int64)
    for block in row_blocks(data):
        counts += np.bincount(codes[block], minlength=size)
    release_columns(data)
    return counts


def release_columns(data: Interactions) -> None:
    """Give back the pages of mapped columns this process touched (worker/data/mapped.py);
    nothing for columns in memory."""
    for column in (data.user, data.item, data.timestamp, data.event_type, data.event_value):
        release(column)
    for codes in data.context.values():
        release(codes)
