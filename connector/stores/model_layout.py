"""How a model version is laid out in Redis: its manifest, the row chunks of its arrays and
item ids, and the conversions between arrays and chunk bytes.

Pure (no Redis calls), so the layout is tested without a server and the store
(connector/stores/model_versions.py) only moves bytes. The layout is the public contract of
docs/redis-keys.md.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from connector.exceptions import ModelNotFoundError
from connector.model.artifacts import ITEM_PREFIX, ModelArtifacts, padded_buffer

FORMAT = 1
CHUNK_BYTES = 1 << 20  # about 1 MiB per chunk: no huge values, fast to move and to evict
BATCH_BYTES = 16 << 20  # bytes per pipeline round trip: few trips, bounded client memory
STALE_AFTER_SECONDS = 600.0  # an incomplete version older than this is a crashed publish
LOAD_ATTEMPTS = 5
_NUMERIC_KINDS = "biufcmM"  # raw bytes round-trip exactly; strings and objects do not
_ID_BYTES = 256  # Personalize's longest item id, to size id chunks like array chunks


@dataclass(frozen=True)
class ArrayLayout:
    """How one array is stored: dtype and shape to rebuild it, rows per chunk to find it."""

    dtype: str  # numpy dtype string, always little-endian ('<f4', '<i8', '|b1', ...)
    shape: tuple[int, ...]
    chunk_rows: int | None  # None: the whole array in chunk 0

    @property
    def chunks(self) -> int:
        """How many chunk keys hold the array."""
        return 1 if self.chunk_rows is None else math.ceil(self.shape[0] / self.chunk_rows)

    @property
    def nbytes(self) -> int:
        """Size of the whole array in bytes, to check what is read back."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict[str, Any]:
        """The manifest entry (with `chunks` spelled out for readers in other languages)."""
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "chunk_rows": self.chunk_rows,
            "chunks": self.chunks,
        }

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ArrayLayout:
        """The layout of a manifest entry."""
        return cls(entry["dtype"], tuple(entry["shape"]), entry["chunk_rows"])


@dataclass(frozen=True)
class Manifest:
    """What a version consists of and whether it may be read (`complete`)."""

    version: str
    created: float  # Unix seconds
    items: int
    id_chunk_rows: int
    arrays: dict[str, ArrayLayout]
    metrics: dict[str, float] = field(default_factory=dict)
    complete: bool = False
    deleting: bool = False

    @property
    def id_chunks(self) -> int:
        """How many chunk keys hold the item ids."""
        return math.ceil(self.items / self.id_chunk_rows)

    def to_json(self) -> bytes:
        """The manifest as stored in Redis."""
        document = {
            "format": FORMAT,
            "version": self.version,
            "created": self.created,
            "complete": self.complete,
            "deleting": self.deleting,
            "items": self.items,
            "ids": {"chunk_rows": self.id_chunk_rows, "chunks": self.id_chunks},
            "arrays": {name: layout.to_json() for name, layout in self.arrays.items()},
            "metrics": self.metrics,
        }
        return orjson.dumps(document)

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """The manifest stored in Redis."""
        doc = orjson.loads(raw)
        arrays = {name: ArrayLayout.from_json(entry) for name, entry in doc["arrays"].items()}
        return cls(
            doc["version"],
            doc["created"],
            doc["items"],
            doc["ids"]["chunk_rows"],
            arrays,
            doc.get("metrics", {}),
            doc["complete"],
            doc.get("deleting", False),
        )


@dataclass(frozen=True)
class VersionInfo:
    """One line of `streamrec models list`: a version and a summary of its manifest."""

    version: str
    created: datetime
    complete: bool
    items: int
    current: bool
    metrics: dict[str, float]


def new_version_id(now: datetime) -> str:
    """An id that sorts by creation time (UTC, microseconds) and never collides."""
    return f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(3)}"


def plan(version: str, artifacts: ModelArtifacts, created: float, chunk_bytes: int) -> Manifest:
    """The manifest of artifacts about to be published (not complete yet)."""
    _check(artifacts)
    arrays = {name: _layout(name, array, chunk_bytes) for name, array in artifacts.arrays.items()}
    id_rows = max(1, chunk_bytes // _ID_BYTES)
    metrics = _metrics(artifacts.meta)
    return Manifest(version, created, len(artifacts.items), id_rows, arrays, metrics)


def _check(artifacts: ModelArtifacts) -> None:
    """Refuse artifacts the store could not give back exactly, before writing anything."""
    if len(set(artifacts.items)) != len(artifacts.items):
        raise ValueError("item ids must be unique: each names one embedding row")
    for name, array in artifacts.arrays.items():
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise ValueError(f"array {name!r} has dtype {array.dtype}; only numeric arrays")
        if name.startswith(ITEM_PREFIX) and (array.ndim == 0 or len(array) != len(artifacts.items)):
            raise ValueError(
                f"array {name!r} has shape {array.shape}: an item_* array needs one row per "
                f"item ({len(artifacts.items)})"
            )


def _layout(name: str, array: np.ndarray, chunk_bytes: int) -> ArrayLayout:
    """Row chunks of about `chunk_bytes` for item arrays, one chunk for the others."""
    dtype = array.dtype.newbyteorder("<").str
    if not name.startswith(ITEM_PREFIX):
        return ArrayLayout(dtype, array.shape, None)
    row_bytes = max(1, math.prod(array.shape[1:]) * array.itemsize)
    return ArrayLayout(dtype, array.shape, max(1, chunk_bytes // row_bytes))


def _metrics(meta: dict[str, Any]) -> dict[str, float]:
    """The numeric offline metrics of `meta`, copied into the manifest for cheap listings."""
    metrics = meta.get("metrics", {})
    if not isinstance(metrics, dict):
        return {}
    return {
        str(name): float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _encode_meta(meta: dict[str, Any]) -> bytes:
    """`meta` as stored, refused before anything is written if it is not JSON.

    JSON has no NaN or infinity: such floats are stored (and come back) as null.
    """
    try:
        return orjson.dumps(meta)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"model meta must be JSON-serialisable: {exc}") from exc


def _array_parts(array: np.ndarray, layout: ArrayLayout) -> Iterator[bytes]:
    """The stored chunks of an array: raw little-endian bytes, row slices or the whole."""
    data = np.ascontiguousarray(array, dtype=np.dtype(layout.dtype))
    if layout.chunk_rows is None:
        yield data.tobytes()
        return
    for start in range(0, len(data), layout.chunk_rows):
        yield data[start : start + layout.chunk_rows].tobytes()


def _id_parts(items: Sequence[str], rows: int) -> Iterator[bytes]:
    """The stored chunks of the item ids: JSON lists, `rows` ids each."""
    for start in range(0, len(items), rows):
        yield orjson.dumps(list(items[start : start + rows]))


class _Assembly:
    """One writable array filled chunk by chunk as its chunks arrive, so a load holds the
    array and one batch of chunks, never every chunk beside the array; refuses chunks of the
    wrong total size. With `padded`, the array is the tail of a `padded_buffer`."""

    def __init__(self, layout: ArrayLayout, where: str, padded: bool = False) -> None:
        dtype = np.dtype(layout.dtype)
        self._layout, self._where = layout, where
        if padded and layout.shape:
            self.array = padded_buffer(layout.shape, dtype)[1:]
        else:
            self.array = np.zeros(layout.shape, dtype)
        self._bytes = self.array.reshape(-1).view(np.uint8)
        self._filled = 0

    def add(self, part: bytes) -> None:
        """The next chunk's bytes."""
        end = self._filled + len(part)
        if end > self._layout.nbytes:
            raise self._damaged()
        self._bytes[self._filled : end] = np.frombuffer(part, np.uint8)
        self._filled = end

    def finish(self) -> np.ndarray:
        """The array, once every chunk is in."""
        if self._filled != self._layout.nbytes:
            raise self._damaged()
        return self.array

    def _damaged(self) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"{self._where} is damaged: its chunks do not add up to its shape"
        )
