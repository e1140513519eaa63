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
