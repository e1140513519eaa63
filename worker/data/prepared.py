"""The training data prepared on disk: the cache's records stitched, selected and sorted by
(user, time, arrival) into column files that training maps instead of holding.

Why: a FULL run over tens of millions of events must not hold them all (issue 21; the
in-memory path grew by about 900 bytes per event). Preparation reads the cache one chunk at
a time and sorts with buckets: each user's rows go to the bucket of its range of users, and
each bucket (about BUCKET_ROWS rows) is sorted alone, so memory holds one chunk or one
bucket, plus arrays of one entry per distinct id (vocabularies, stitching, counts).

The result equals `select(to_interactions(cache.columns(), fields), settings)` (the
in-memory definition, worker/data/cache.py), which a unit test checks on random data. Its
arrays are read-only maps of `.npy` files in `directory`, rewritten by every run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from connector.model.history import ABSENT
from worker.data.interactions import Interactions
from worker.data.mapped import map_npy
from worker.data.selection import SelectionSummary, length_bounds
from worker.settings import WorkerSettings

BUCKET_ROWS = 1_000_000  # rows sorted at a time: about 40 MB of columns
Chunks = Callable[[], Iterator["ChunkColumns"]]


class ChunkColumns(Protocol):
    """One cache chunk (worker.data.cache.RecordColumns): string columns as codes into its
    own `strings` (-1: absent), one row per record in the order they were read."""

    strings: list[str]
    codes: dict[str, np.ndarray]
    timestamp: np.ndarray
    event_value: np.ndarray

    def __len__(self) -> int: ...


@dataclass
class _Vocabulary:
    """Every string of every chunk, one global code each, in first-read order."""

    codes: dict[str, int] = field(default_factory=dict)

    def remap(self, strings: Sequence[str]) -> np.ndarray:
        """Chunk code -> global code, with a trailing -1 so code -1 stays -1."""
        found = [self.codes.setdefault(text, len(self.codes)) for text in strings]
        return np.array([*found, -1], np.int64)

    def strings(self) -> list[str]:
        return list(self.codes)


@dataclass
class _Owners:
    """Per session code: the user of its earliest logged-in row (by time, then arrival)."""

    user: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    timestamp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    arrival: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def grow(self, size: int) -> None:
        extra = size - len(self.user)
        if extra > 0:
            self.user = np.concatenate([self.user, np.full(extra, -1, np.int64)])
            self.timestamp = np.concatenate([self.timestamp, np.zeros(extra, np.int64)])
            self.arrival = np.concatenate([self.arrival, np.zeros(extra, np.int64)])

    def add(self, users: np.ndarray, sessions: np.ndarray, stamps: np.ndarray, first: int) -> None:
        """The logged-in rows of one chunk, whose first row arrived `first`-th."""
        rows = np.flatnonzero((sessions >= 0) & (users != sessions))
        if not len(rows):
            return
        rows = rows[np.lexsort((rows, stamps[rows], sessions[rows]))]
        session, earliest = np.unique(sessions[rows], return_index=True)
        rows = rows[earliest]
        stamp, user, arrival = stamps[rows], users[rows], rows + first
        held = self.user[session] >= 0
        earlier = ~held | (stamp < self.timestamp[session])  # same time: the held one came first
        chosen = session[earlier]
        self.user[chosen] = user[earlier]
        self.timestamp[chosen] = stamp[earlier]
        self.arrival[chosen] = arrival[earlier]

    def stitch(self, users: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        """Anonymous rows (user code == session code) given to their session's owner."""
        anonymous = np.flatnonzero((sessions >= 0) & (users == sessions))
        owners = self.user[sessions[anonymous]]
        result = users.copy()
        known = owners >= 0
        result[anonymous[known]] = owners[known]
        return result


@dataclass
class _Rows:
    """One chunk's rows in global codes, stitched, with the row filters applied."""

    user: np.ndarray
    item: np.ndarray
    event_type: np.ndarray
    context: dict[str, np.ndarray]
    timestamp: np.ndarray
    event_value: np.ndarray
    arrival: np.ndarray


def prepare(
    chunks: Chunks, fields: Sequence[str], settings: WorkerSettings, directory: Path
) -> tuple[Interactions, SelectionSummary]:
    """The selected training data of `chunks` (called once per pass) as column files in
    `directory`, mapped read-only; and what each filter dropped."""
    vocabulary, owners = _read_ids(chunks)
    strings = vocabulary.strings()
    wanted = _wanted_types(vocabulary, settings.training_event_types)
    present = _Present(len(strings), fields)
    counts, rows_read, dropped = _count(chunks, vocabulary, owners, wanted, settings, present)
    low, high = length_bounds(counts, *_percentiles(settings))
    keep_user = (counts > 0) & (counts >= low) & (counts <= high)
    dense_user = np.cumsum(keep_user) - 1  # global code -> dense user code where kept
    summary = SelectionSummary.of(rows_read, dropped, counts, (low, high))
    kept_rows = summary.rows_kept
    shutil.rmtree(directory, ignore_errors=True)
    buckets = _Buckets(directory / "buckets", _bucket_starts(counts[keep_user]), fields)
    for rows in _kept_rows(chunks, vocabulary, owners, wanted, settings, fields):
        rows = _select(rows, keep_user[rows.user])
        rows.user = dense_user[rows.user]
        present.item[rows.item] = True
        buckets.add(rows)
    data = _write_sorted(buckets, present, strings, keep_user, fields, directory, kept_rows)
    shutil.rmtree(directory / "buckets", ignore_errors=True)
    return data, summary


def _percentiles(settings: WorkerSettings) -> tuple[float, float]:
    return (
        settings.min_user_history_length_percentile,
        settings.max_user_history_length_percentile,
    )


def _read_ids(chunks: Chunks) -> tuple[_Vocabulary, _Owners]:
    """Pass 1: the global vocabulary, and who each session logged in as."""
    vocabulary, owners, first = _Vocabulary(), _Owners(), 0
    for chunk in chunks():
        remap = vocabulary.remap(chunk.strings)
        owners.grow(len(vocabulary.codes))
        users, sessions = remap[chunk.codes["USER_ID"]], remap[chunk.codes["SESSION_ID"]]
        owners.add(users, sessions, chunk.timestamp, first)
        first += len(chunk)
    return vocabulary, owners


def _wanted_types(vocabulary: _Vocabulary, names: Sequence[str]) -> np.ndarray | None:
    """Global codes of the event types training keeps (None: every row)."""
    if not names:
        return None
    absent = [-1] if ABSENT in names else []  # a row without a type has code -1
    return np.array([vocabulary.codes.get(name, -2) for name in names] + absent, np.int64)


def _chunk_rows(
    chunks: Chunks,
    vocabulary: _Vocabulary,
    owners: _Owners,
    fields: Sequence[str],
) -> Iterator[_Rows]:
    """Every chunk's rows in global codes, stitched, with their arrival numbers."""
    first = 0
    for chunk in chunks():
        remap = vocabulary.remap(chunk.strings)
        codes = {name: remap[column] for name, column in chunk.codes.items()}
        yield _Rows(
            user=owners.stitch(codes["USER_ID"], codes["SESSION_ID"]),
            item=codes["ITEM_ID"],
            event_type=codes["EVENT_TYPE"],
            context={name: codes[name] for name in fields},
            timestamp=chunk.timestamp,
            event_value=chunk.event_value,
            arrival=np.arange(first, first + len(chunk), dtype=np.int64),
        )
        first += len(chunk)


def _filters(
    rows: _Rows, wanted: np.ndarray | None, threshold: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows of a wanted event type, those that also reach the value threshold)."""
    typed = np.ones(len(rows.user), bool) if wanted is None else np.isin(rows.event_type, wanted)
    if threshold is None:
        return typed, typed
    return typed, typed & (rows.event_value >= threshold)  # NaN compares False: dropped


def _count(
    chunks: Chunks,
    vocabulary: _Vocabulary,
    owners: _Owners,
    wanted: np.ndarray | None,
    settings: WorkerSettings,
    present: _Present,
) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Pass 2: rows per (stitched) user after the row filters; rows read; rows each
    dropped. Notes in `present` the event types and context values of every row read
    (their vocabularies, like the in-memory path's, are not narrowed by the filters)."""
    counts = np.zeros(len(vocabulary.codes), np.int64)
    read = by_type = by_value = 0
    for rows in _chunk_rows(chunks, vocabulary, owners, list(present.context)):
        present.add_labels(rows)
        typed, valued = _filters(rows, wanted, settings.training_event_value_threshold)
        counts += np.bincount(rows.user[valued], minlength=len(counts))
        read += len(rows.user)
        by_type += int((~typed).sum())
        by_value += int((typed & ~valued).sum())
    return counts, read, (by_type, by_value)


def _kept_rows(
    chunks: Chunks,
    vocabulary: _Vocabulary,
    owners: _Owners,
    wanted: np.ndarray | None,
    settings: WorkerSettings,
    fields: Sequence[str],
) -> Iterator[_Rows]:
    """Pass 3: every chunk's rows that pass the row filters."""
    for rows in _chunk_rows(chunks, vocabulary, owners, fields):
        _, keep = _filters(rows, wanted, settings.training_event_value_threshold)
        yield _select(rows, keep)


def _select(rows: _Rows, keep: np.ndarray) -> _Rows:
    return _Rows(
        user=rows.user[keep],
        item=rows.item[keep],
        event_type=rows.event_type[keep],
        context={name: codes[keep] for name, codes in rows.context.items()},
        timestamp=rows.timestamp[keep],
        event_value=rows.event_value[keep],
        arrival=rows.arrival[keep],
    )


def _bucket_starts(user_rows: np.ndarray) -> np.ndarray:
    """The first dense user of each bucket: consecutive users, about BUCKET_ROWS rows each."""
    before = np.cumsum(user_rows) - user_rows
    starts = np.flatnonzero(np.diff(before // BUCKET_ROWS, prepend=-1))
    return starts if len(starts) else np.zeros(1, np.int64)


_COLUMNS = ("user", "item", "event_type", "timestamp", "event_value", "arrival")
_WIDE = ("timestamp", "event_value", "arrival")  # kept as they are; the rest are codes


class _Buckets:
    """Files of raw column values per bucket, appended to chunk by chunk."""

    def __init__(self, directory: Path, starts: np.ndarray, fields: Sequence[str]) -> None:
        directory.mkdir(parents=True)
        self.directory, self.starts = directory, starts
        self.names = [*_COLUMNS, *(f"context.{name}" for name in fields)]
        self.dtypes: dict[str, np.dtype[np.generic]] = {}

    def add(self, rows: _Rows) -> None:
        bucket = np.searchsorted(self.starts, rows.user, side="right") - 1
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(len(self.starts) + 1))
        for name in self.names:
            values = _column(rows, name)[order]
            if name not in _WIDE:  # codes: int32 halves the bucket files
                values = values.astype(np.int32)
            self.dtypes[name] = values.dtype
            for index in np.flatnonzero(np.diff(bounds)):
                with (self.directory / f"{index}.{name}").open("ab") as handle:
                    values[bounds[index] : bounds[index + 1]].tofile(handle)

    def read(self, index: int) -> dict[str, np.ndarray]:
        """One bucket's columns (empty when no row went to it)."""
        found = {}
        for name in self.names:
            path = self.directory / f"{index}.{name}"
            dtype = self.dtypes.get(name, np.dtype(np.int64))
            found[name] = np.fromfile(path, dtype) if path.exists() else np.zeros(0, dtype)
        return found


def _column(rows: _Rows, name: str) -> np.ndarray:
    if name.startswith("context."):
        return rows.context[name.removeprefix("context.")]
    value: np.ndarray = getattr(rows, name)
    return value


class _Present:
    """Which global codes occur as items, event types and context values in kept rows."""

    def __init__(self, size: int, fields: Sequence[str]) -> None:
        self.item = np.zeros(size, bool)
        self.event_type = np.zeros(size, bool)
        self.context = {name: np.zeros(size, bool) for name in fields}

    def add_labels(self, rows: _Rows) -> None:
        """The event types and context values of `rows`."""
        self.event_type[rows.event_type[rows.event_type >= 0]] = True
        for name, codes in rows.context.items():
            self.context[name][codes[codes >= 0]] = True


def _dense_map(present: np.ndarray, optional: bool) -> np.ndarray:
    """Global code -> dense code (index -1, the absent code, last): present codes in code
    order, after ABSENT (code 0) when `optional`."""
    shift = 1 if optional else 0
    mapping = np.cumsum(present) - 1 + shift
    return np.concatenate([mapping, [0]]).astype(np.int32)


def _names(strings: Sequence[str], present: np.ndarray, optional: bool) -> list[str]:
    names = [strings[code] for code in np.flatnonzero(present).tolist()]
    return [ABSENT, *names] if optional else names


_DTYPES = {
    "user": np.int32,
    "item": np.int32,
    "timestamp": np.int64,
    "event_type": np.int32,
    "event_value": np.float32,
}


def _write_sorted(
    buckets: _Buckets,
    present: _Present,
    strings: Sequence[str],
    keep_user: np.ndarray,
    fields: Sequence[str],
    directory: Path,
    rows: int,
) -> Interactions:
    """Pass 4: each bucket sorted by (user, time, arrival), dense codes, appended to one
    .npy file per column; then the files mapped."""
    maps = {
        "item": _dense_map(present.item, optional=False),
        "event_type": _dense_map(present.event_type, optional=True),
        **{f"context.{name}": _dense_map(present.context[name], True) for name in fields},
    }
    dtypes = {**_DTYPES, **{f"context.{name}": np.int32 for name in fields}}
    writers = {
        name: _NpyWriter(directory / f"{name}.npy", dtype, rows) for name, dtype in dtypes.items()
    }
    for index in range(len(buckets.starts)):
        columns = buckets.read(index)
        order = np.lexsort((columns["arrival"], columns["timestamp"], columns["user"]))
        for name, writer in writers.items():
            values = columns[name][order]
            writer.write(maps[name][values] if name in maps else values)
    for writer in writers.values():
        writer.close()
    mapped = {name: map_npy(directory / f"{name}.npy") for name in dtypes}
    return Interactions(
        user=mapped["user"],
        item=mapped["item"],
        timestamp=mapped["timestamp"],
        event_type=mapped["event_type"],
        event_value=mapped["event_value"],
        context={name: mapped[f"context.{name}"] for name in fields},
        users=[strings[code] for code in np.flatnonzero(keep_user).tolist()],
        items=_names(strings, present.item, optional=False),
        event_types=_names(strings, present.event_type, optional=True),
        context_values={name: _names(strings, present.context[name], True) for name in fields},
    )


class _NpyWriter:
    """A .npy file of a known length, written front to back in pieces."""

    def __init__(self, path: Path, dtype: type, rows: int) -> None:
        self._dtype = np.dtype(dtype)
        self._handle = path.open("wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self._dtype),
            "fortran_order": False,
            "shape": (rows,),
        }
        np.lib.format.write_array_header_1_0(self._handle, header)
        self._left = rows

    def write(self, values: np.ndarray) -> None:
        self._left -= len(values)
        values.astype(self._dtype, copy=False).tofile(self._handle)

    def close(self) -> None:
        if self._left:
            raise RuntimeError(f"{self._handle.name}: {self._left} rows short")
        self._handle.close()
