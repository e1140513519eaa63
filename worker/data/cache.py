"""A local cache of the Interactions dataset, so a run reads from Kafka only what is new.

Layout of `<worker_cache_dir>/<group>/`: numbered chunks `chunk-N.npz`, one per run that
found new records, and `manifest.json`, which lists the chunks, the next offset of every
partition, the topic's id and the context fields the chunks hold. Chunks are compressed
numpy archives of columns: strings become int32 codes into one vocabulary per chunk (ids
repeat across rows, so each is stored once), timestamps int64, values float32, dedup hashes
uint64. Why npz rather than JSON lines: a million rows load in a fraction of a second as
arrays ready for training, with no per-row parsing, and compress to a few bytes a row.

Crash safety: every file is written to a temporary name, fsynced and renamed; the manifest
is renamed last, so it only ever names complete chunks. A crash leaves at most an unlisted
chunk, which the next run deletes. A topic that was recreated (new topic id, or an end
offset below what the cache already read) or a changed set of context fields rebuilds the
cache from scratch.

The cache stores records already deduplicated (also against earlier runs, by hash) but not
stitched: a login read in a later run must re-attribute anonymous rows of earlier ones, so
stitching is done on load.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connector.model.history import ABSENT
from connector.registry.registry import open_registry
from connector.registry.rules import DatasetSchema
from worker.data.interactions import Interactions
from worker.data.prepared import prepare
from worker.data.reader import (
    NO_MARKER,
    DatasetRecord,
    RowDecoder,
    TopicReader,
    interaction_records,
    stitch,
)
from worker.data.selection import check_minimum, not_enough_data
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

FORMAT = 2  # 2: chunk_rows; a cache of format 1 is rebuilt from the topic
BASE_COLUMNS = ("USER_ID", "ITEM_ID", "EVENT_TYPE", "SESSION_ID")
CHUNK_ROWS = 1_000_000  # most rows per chunk: what one step of an update or a load holds
_MANIFEST = "manifest.json"
PREPARED = "prepared"  # the directory of the training data prepared from the chunks


@dataclass
class RecordColumns:
    """Dataset records as columns. String columns hold codes into `strings` (-1: absent)."""

    strings: list[str]
    codes: dict[str, np.ndarray]  # column name -> int32 codes
    timestamp: np.ndarray  # int64
    event_value: np.ndarray  # float32, NaN: no value
    dedup: np.ndarray  # uint64 hash of (key, marker); 0: no marker

    def __len__(self) -> int:
        return len(self.timestamp)

    def select(self, mask: np.ndarray | slice) -> RecordColumns:
        """The rows where `mask` holds, or of a slice (the vocabulary is kept whole)."""
        return RecordColumns(
            self.strings,
            {name: codes[mask] for name, codes in self.codes.items()},
            self.timestamp[mask],
            self.event_value[mask],
            self.dedup[mask],
        )


def to_columns(records: Iterable[DatasetRecord], context_fields: Sequence[str]) -> RecordColumns:
    """Columns of DatasetRecords (dedup hash, session, row fields), in their order."""
    vocabulary: dict[str, int] = {}
    names = (*BASE_COLUMNS, *context_fields)
    codes: dict[str, list[int]] = {name: [] for name in names}
    timestamp, value, dedup = [], [], []
    for record in records:
        fields = {**record.row, "SESSION_ID": record.session_id}
        for name in names:
            text = fields.get(name)
            codes[name].append(
                -1 if text is None else vocabulary.setdefault(str(text), len(vocabulary))
            )
        timestamp.append(int(record.row["TIMESTAMP"]))
        event_value = record.row.get("EVENT_VALUE")
        value.append(np.nan if event_value is None else float(event_value))
        dedup.append(record.dedup_hash)
    return RecordColumns(
        list(vocabulary),
        {name: np.asarray(column, np.int32) for name, column in codes.items()},
        np.asarray(timestamp, np.int64),
        np.asarray(value, np.float32),
        np.asarray(dedup, np.uint64),
    )


def concat(parts: Sequence[RecordColumns]) -> RecordColumns:
    """One RecordColumns of `parts` in order, their vocabularies merged."""
    vocabulary: dict[str, int] = {}
    codes: dict[str, list[np.ndarray]] = {name: [] for name in (parts[0].codes if parts else ())}
    for part in parts:
        remap = np.array([vocabulary.setdefault(s, len(vocabulary)) for s in part.strings] + [-1])
        for name, column in part.codes.items():
            codes[name].append(remap[column].astype(np.int32))  # -1 picks the trailing -1
    return RecordColumns(
        list(vocabulary),
        {name: np.concatenate(columns) for name, columns in codes.items()},
        np.concatenate([p.timestamp for p in parts]) if parts else np.zeros(0, np.int64),
        np.concatenate([p.event_value for p in parts]) if parts else np.zeros(0, np.float32),
        np.concatenate([p.dedup for p in parts]) if parts else np.zeros(0, np.uint64),
    )


def _save(columns: RecordColumns, path: Path) -> None:
    """One chunk; strings as one UTF-8 blob plus end offsets (no pickled objects)."""
    encoded = [text.encode() for text in columns.strings]
    arrays: dict[str, Any] = {f"codes.{name}": codes for name, codes in columns.codes.items()}
    arrays["strings"] = np.frombuffer(b"".join(encoded), np.uint8)
    arrays["string_ends"] = np.cumsum([len(item) for item in encoded], dtype=np.int64)
    arrays.update(timestamp=columns.timestamp, event_value=columns.event_value)
    with _Atomic(path) as handle:
        np.savez_compressed(handle, dedup=columns.dedup, **arrays)


def _load(path: Path) -> RecordColumns:
    with np.load(path, allow_pickle=False) as archive:
        blob, ends = archive["strings"].tobytes(), archive["string_ends"]
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        strings = [blob[s:e].decode() for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        codes = {
            key.removeprefix("codes."): archive[key]
            for key in archive.files
            if key.startswith("codes.")
        }
        return RecordColumns(
            strings, codes, archive["timestamp"], archive["event_value"], archive["dedup"]
        )


class _Atomic:
    """A file opened for writing under a temporary name, renamed into place when closed
    without error (after fsync), removed otherwise."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._temporary = path.with_name(f".{path.name}.tmp")

    def __enter__(self) -> Any:
        self._handle = self._temporary.open("wb")
        return self._handle

    def __exit__(self, error: object, *_rest: object) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        if error is not None:
            self._temporary.unlink(missing_ok=True)
            return
        os.replace(self._temporary, self._path)
        directory = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power loss
        finally:
            os.close(directory)


@dataclass
class Manifest:
    """What the cache holds: chunks, next offset per partition, topic id, context fields."""

    topic_id: str | None = None
    context_fields: list[str] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    chunks: list[str] = field(default_factory=list)
    chunk_rows: list[int] = field(default_factory=list)  # rows of each chunk
    rows: int = 0
    next_chunk: int = 1

    def to_json(self) -> bytes:
        body = {
            **self.__dict__,
            "format": FORMAT,
            "offsets": {str(p): o for p, o in self.offsets.items()},
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest | None:
        body = json.loads(raw)
        if body.pop("format", None) != FORMAT:
            return None
        body["offsets"] = {int(p): int(o) for p, o in body["offsets"].items()}
        return cls(**body)


@dataclass(frozen=True)
class CacheUpdate:
    """What one update did: records fetched from Kafka, rows added, whether it rebuilt."""

    fetched: int
    added: int
    duplicates: int
    rebuilt: bool
    rows: int


class DataCache:
    """The cached Interactions rows of one dataset group, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def manifest(self) -> Manifest | None:
        """The committed manifest, or None when there is no (readable) cache."""
        try:
            return Manifest.from_json((self.directory / _MANIFEST).read_bytes())
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def update(
        self, reader: TopicReader, decode: RowDecoder, context_fields: Sequence[str]
    ) -> CacheUpdate:
        """Append the records `reader` has beyond the cached offsets; rebuild if stale."""
        self.directory.mkdir(parents=True, exist_ok=True)
        current = self.manifest()
        rebuilt = current is not None and _stale(current, reader, context_fields)
        manifest = current if current is not None and not rebuilt else None
        if manifest is None:  # chunk numbers go on, so no listed chunk is overwritten
            numbered = current.next_chunk if current is not None else 1
            manifest = Manifest(reader.topic_id, list(context_fields), next_chunk=numbered)
        cached = np.sort(self._dedup(manifest))
        added = duplicates = 0
        records = interaction_records(reader, decode, manifest.offsets)
        for batch in _batches(records, CHUNK_ROWS):  # one chunk's records at a time
            new = to_columns(batch, context_fields)
            kept = new.select(_first_seen(new.dedup, cached))
            cached = np.union1d(cached, kept.dedup[kept.dedup != NO_MARKER])
            added, duplicates = added + len(kept), duplicates + len(new) - len(kept)
            if len(kept):
                self._add_chunk(manifest, kept)
        manifest.offsets = {p: high for p, (_, high) in reader.bounds.items()}
        self._commit(manifest)
        return CacheUpdate(reader.fetched, added, duplicates, rebuilt, manifest.rows)

    def replace_with(
        self, chunks: Iterable[RecordColumns], context_fields: Sequence[str]
    ) -> CacheUpdate:
        """A cache of `chunks` alone, as if read from a topic of no known id (so the next
        `update` rebuilds it from the topic): for benchmarks of data too big to publish."""
        self.directory.mkdir(parents=True, exist_ok=True)
        current = self.manifest()
        numbered = current.next_chunk if current is not None else 1
        manifest = Manifest(None, list(context_fields), next_chunk=numbered)
        for columns in chunks:
            self._add_chunk(manifest, columns)
        self._commit(manifest)
        return CacheUpdate(manifest.rows, manifest.rows, 0, True, manifest.rows)

    def columns(self) -> RecordColumns:
        """Every cached row, in the order they were read (all in memory: for tests and
        small data; training reads `chunks`)."""
        return concat(list(self.chunks()))

    def chunks(self) -> Iterator[RecordColumns]:
        """The cached rows a chunk at a time, in the order they were read."""
        for path in self.chunk_paths():
            yield _load(path)

    def chunk_paths(self) -> list[Path]:
        """The files of the committed chunks, in order."""
        manifest = self.manifest()
        return [self.directory / name for name in (manifest.chunks if manifest else [])]

    def _dedup(self, manifest: Manifest) -> np.ndarray:
        parts = []
        for name in manifest.chunks:
            with np.load(self.directory / name, allow_pickle=False) as archive:
                parts.append(archive["dedup"])
        return np.concatenate(parts) if parts else np.zeros(0, np.uint64)

    def _add_chunk(self, manifest: Manifest, columns: RecordColumns) -> None:
        """Add rows as chunks of at most CHUNK_ROWS; rows that fit go into the last chunk
        when it is short (a run that found a few records), so chunks stay few and big, and
        no step holds more than CHUNK_ROWS rows."""
        for start in range(0, len(columns), CHUNK_ROWS):
            part = columns.select(slice(start, start + CHUNK_ROWS))
            last = self.directory / manifest.chunks[-1] if manifest.chunks else None
            if last is not None and manifest.chunk_rows[-1] + len(part) <= CHUNK_ROWS:
                part = concat([_load(last), part])
                manifest.chunks.pop()
                manifest.rows -= manifest.chunk_rows.pop()
            self._write_chunk(manifest, part)

    def _write_chunk(self, manifest: Manifest, columns: RecordColumns) -> None:
        name = f"chunk-{manifest.next_chunk:06d}.npz"
        _save(columns, self.directory / name)
        manifest.chunks.append(name)
        manifest.chunk_rows.append(len(columns))
        manifest.next_chunk += 1
        manifest.rows += len(columns)

    def _commit(self, manifest: Manifest) -> None:
        """Publish the manifest, then delete the files it no longer names."""
        with _Atomic(self.directory / _MANIFEST) as handle:
            handle.write(manifest.to_json())
        keep = {*manifest.chunks, _MANIFEST}
        for path in self.directory.iterdir():
            if path.name not in keep and (path.suffix in (".npz", ".tmp")):
                path.unlink(missing_ok=True)


def _stale(manifest: Manifest, reader: TopicReader, context_fields: Sequence[str]) -> bool:
    """Whether the cache cannot be continued: another topic, fewer records, other fields."""
    reasons = {
        "topic was recreated": manifest.topic_id != reader.topic_id,
        "context fields changed": manifest.context_fields != list(context_fields),
        "offsets went backwards": any(
            partition not in reader.bounds or offset > reader.bounds[partition][1]
            for partition, offset in manifest.offsets.items()
        ),
    }
    found = [reason for reason, holds in reasons.items() if holds]
    if found:
        log.warning("rebuilding the training-data cache", extra={"reasons": found})
    return bool(found)


def _first_seen(hashes: np.ndarray, cached: np.ndarray) -> np.ndarray:
    """Mask of rows whose (key, marker) hash is neither in `cached` nor on an earlier row;
    rows without a marker are always kept."""
    first = np.zeros(len(hashes), bool)
    first[np.unique(hashes, return_index=True)[1]] = True
    kept: np.ndarray = (hashes == NO_MARKER) | (first & ~np.isin(hashes, cached))
    return kept


def _batches(items: Iterable[DatasetRecord], size: int) -> Iterator[list[DatasetRecord]]:
    """`items` in lists of `size` (the last one shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def to_interactions(columns: RecordColumns, context_fields: Sequence[str]) -> Interactions:
    """Training columns from cached records, anonymous rows stitched to their users."""
    codes = columns.codes
    users, user = _dense(stitch(codes["USER_ID"], codes["SESSION_ID"], columns.timestamp), columns)
    items, item = _dense(codes["ITEM_ID"], columns)
    types, event_type = _dense_optional(codes["EVENT_TYPE"], columns)
    contexts = {name: _dense_optional(codes[name], columns) for name in context_fields}
    order = np.lexsort((np.arange(len(user)), columns.timestamp, user))  # arrival breaks ties
    return Interactions(
        user=user[order],
        item=item[order],
        timestamp=columns.timestamp[order],
        event_type=event_type[order],
        event_value=columns.event_value[order],
        context={name: found[1][order] for name, found in contexts.items()},
        users=users,
        items=items,
        event_types=types,
        context_values={name: found[0] for name, found in contexts.items()},
    )


def _dense(codes: np.ndarray, columns: RecordColumns) -> tuple[list[str], np.ndarray]:
    """(values present, index of each row into them), values in first-read order."""
    present, index = np.unique(codes, return_inverse=True)
    return [columns.strings[code] for code in present.tolist()], index.astype(np.int32)


def _dense_optional(codes: np.ndarray, columns: RecordColumns) -> tuple[list[str], np.ndarray]:
    """Like _dense, with ABSENT as value 0 for rows without one (code -1)."""
    present, index = np.unique(codes, return_inverse=True)
    shift = 0 if len(present) and present[0] < 0 else 1  # -1 sorts first and becomes ABSENT
    names = [columns.strings[code] for code in present.tolist() if code >= 0]
    return [ABSENT, *names], (index + shift).astype(np.int32)


def context_fields(spec: DatasetSchema | None) -> list[str]:
    """The schema's categorical metadata fields (DEVICE, LOCATION...): string fields that are
    not free text, which the model takes as context inputs."""
    fields = spec.metadata_fields if spec is not None else ()
    return [f.name for f in fields if f.type == "string" and not f.textual]


def load_training_data(settings: WorkerSettings) -> Interactions:
    """The group's training data: cache brought up to date with Kafka, rows stitched,
    Personalize's selection applied; NotEnoughDataError below the minimum."""
    registry = open_registry(settings)
    group = settings.dataset_group
    fields = context_fields(registry.get(group, "interactions").spec)
    cache = DataCache(settings.worker_cache_dir / group)
    with TopicReader(settings, settings.topics.interactions) as reader:
        update = cache.update(reader, RowDecoder(registry, group, "interactions"), fields)
    log.info("training data cache updated", extra=asdict(update))
    if not cache.chunk_paths():  # nothing in the dataset yet: no columns to stitch or select
        raise not_enough_data(0, 0)
    data, summary = prepare(cache.chunks, fields, settings, cache.directory / PREPARED)
    log.info("training data selected", extra=asdict(summary))
    check_minimum(data)
    return data
