"""A trained model as plain data: what is published to Redis and loaded back by serving.

Kept separate from the model code so the store (connector/stores/model_versions.py) can
write, chunk and read any version without knowing the architecture, and serving can load a
version without importing training code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ITEM_PREFIX = "item_"


@dataclass(frozen=True)
class ModelArtifacts:
    """Everything a model version consists of.

    `items` are the item ids in embedding-row order. `arrays` holds the numeric parts: those
    named `item_*` have one row per item (item_embeddings, item_bias, item_popularity,
    item_created) and are stored in row chunks; the others (recurrent weights, event-type and
    context embeddings) whole. `meta` is JSON-serialisable: architecture name, hyperparameters,
    vocabularies, data range, training time and offline metrics.
    """

    items: list[str]
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def item_arrays(self) -> dict[str, np.ndarray]:
        """The arrays with one row per item (named `item_*`)."""
        return {name: array for name, array in self.arrays.items() if name.startswith(ITEM_PREFIX)}


def padded_buffer(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A zeroed array of one row more than `shape`, for a reader to fill from row 1 on.

    The model's item tables have a padding row 0 (connector/model/network.py). An item array
    read into `padded_buffer(...)[1:]` becomes such a table without a copy, which at
    5,000,000 items spares one copy of the embeddings (docs/performance.md, Serving).
    """
    return np.zeros((shape[0] + 1, *shape[1:]) if shape else (1,), dtype=dtype)


def with_padding_row(array: np.ndarray) -> np.ndarray:
    """`array` with a zero row before its first: the buffer it is the tail of when it was
    read into a `padded_buffer`, else a new array."""
    base = array.base
    if (
        isinstance(base, np.ndarray)
        and base.dtype == array.dtype
        and base.shape == (len(array) + 1, *array.shape[1:])
        and base.flags.c_contiguous
        and array.flags.c_contiguous
        and array.ctypes.data == base.ctypes.data + base.strides[0]
        and not base[0].any()
    ):
        return base
    padding = np.zeros((1, *array.shape[1:]), dtype=array.dtype)
    return np.concatenate([padding, array])
