"""Named filters from the group's FilterStore, evaluated over the served model's items with
their metadata: for API requests and for the precomputed lists (STREAMREC_LISTS_FILTER).

The item metadata table is built once per model version (it follows the version's item
order) and kept with it. Building one for 100,000 items takes a fraction of a second
(pipelined HGETALL): `warm`, registered with the ModelHolder, pays it before the version is
served when the group has a filter; otherwise the first filtered request of a version does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from connector.filters.evaluate import item_mask
from connector.filters.store import FilterStore
from connector.keys import Keys
from connector.model.history import ItemEvent
from connector.redis_client import RedisClient
from connector.serving.current_model import ServingModel
from connector.stores.catalog import ItemTable, load_item_table

ITEM_TABLE = "filters.item_table"  # the key of a version's table in ServingModel.derive


class FilterResolver(Protocol):
    """Turns a named filter into the items it allows, for one request's subject."""

    def mask(
        self,
        name: str,
        values: Mapping[str, str],
        history: Sequence[ItemEvent],
        user: Mapping[str, str],
        model: ServingModel,
    ) -> np.ndarray | None:
        """Allowed items (bool, one per item of `model`, in its order), or None for all;
        raises a ValueError or LookupError subclass for an unknown name or unusable values."""
        ...


class StoredFilters:
    """A FilterResolver over the dataset group's named filters."""

    def __init__(self, store: FilterStore, client: RedisClient, keys: Keys) -> None:
        self._store, self._client, self._keys = store, client, keys
        self._lock = threading.Lock()  # one build per version, however many requests wait

    def mask(
        self,
        name: str,
        values: Mapping[str, str],
        history: Sequence[ItemEvent],
        user: Mapping[str, str],
        model: ServingModel,
    ) -> np.ndarray | None:
        """The items filter `name` allows for this user (FilterNotFoundError, a LookupError,
        for an unknown name; FilterValueError, a ValueError, for missing values)."""
        parsed = self._store.get(name)
        return item_mask(parsed, self._items(model), user, history, values)

    def warm(self, model: ServingModel) -> None:
        """Build `model`'s item table now if the group has a filter to use it."""
        if self._store.list():
            self._items(model)

    def _items(self, model: ServingModel) -> ItemTable:
        with self._lock:
            table: ItemTable = model.derive(
                ITEM_TABLE, lambda: load_item_table(self._client, self._keys, model.model.items)
            )
            return table
