"""The model version being served, held in memory and swapped whole when a new one is
published.

Readers take `holder.current` once per request or batch and use that object throughout, so
a swap in the middle never mixes two versions; the swap itself is one reference assignment.
New versions are announced on a Redis channel; a slow poll of the pointer backs the
subscription up, since pub/sub drops messages while a connection is down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from connector.backoff import Backoff
from connector.exceptions import ModelNotFoundError
from connector.memory import return_freed_memory
from connector.model.artifacts import ModelArtifacts
from connector.model.model import Model
from connector.serving.item_index import ItemIndex
from connector.stores.model_versions import ModelStore

log = logging.getLogger("streamrec.serving")
SECONDS_PER_DAY = 86_400
_FOLLOW_BACKOFF = Backoff(first=1.0, most=30.0)  # re-subscribing after Redis went away
INDEX_MIN_ITEMS = 50_000  # the default of STREAMREC_SERVING_INDEX_MIN_ITEMS


@dataclass(frozen=True)
class ServingModel:
    """A version ready to serve: the model plus the per-item statistics serving needs."""

    version: str
    model: Model
    popularity: np.ndarray  # recency-weighted interaction count per item
    created: np.ndarray  # creation time per item (seconds; -1 unknown)
    context_popularity: dict[str, np.ndarray]  # FIELD -> (items, values of FIELD)
    latest_timestamp: int  # newest interaction in the training data
    index: ItemIndex | None = field(default=None, repr=False, compare=False)  # None: brute force
    derived: dict[object, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def columns(self) -> dict[str, int]:
        """Item id -> column (the model's `items` order)."""
        return self.model.columns

    def derive(self, key: object, make: Callable[[], Any]) -> Any:
        """What `make` computes from this version alone, computed on first use and kept
        with the version (so it is freed with it)."""
        value = self.derived.get(key)
        if value is None:
            value = self.derived[key] = make()
        return value

    @classmethod
    def from_artifacts(
        cls, version: str, artifacts: ModelArtifacts, index_min_items: int = INDEX_MIN_ITEMS
    ) -> ServingModel:
        """Build from a loaded version (missing statistics default to neutral values), with
        an item index when the catalogue has at least `index_min_items` items."""
        items = len(artifacts.items)
        arrays = artifacts.arrays
        data = artifacts.meta.get("data") or {}
        prefix = "item_popularity_"
        model = Model.from_artifacts(artifacts)
        popularity = arrays.get("item_popularity", np.ones(items, np.float32))
        return cls(
            version=version,
            model=model,
            popularity=popularity,
            created=arrays.get("item_created", np.full(items, -1, np.int64)),
            context_popularity={
                name[len(prefix) :]: value
                for name, value in arrays.items()
                if name.startswith(prefix)
            },
            latest_timestamp=int(data.get("last_timestamp") or 0),
            index=_index(model, popularity) if items >= index_min_items else None,
        )


def _index(model: Model, popularity: np.ndarray) -> ItemIndex | None:
    """The index of the items exploitation may return (those with interaction data)."""
    columns = np.flatnonzero(popularity > 0)
    if not len(columns):
        return None
    params = model.params  # item row 0 is padding
    return ItemIndex(params["item_embeddings"][1:], params["item_bias"][1:], columns)


class ModelHolder:
    """The current ServingModel of one dataset group, kept up to date in the background."""

    def __init__(
        self, store: ModelStore, poll_seconds: float = 30.0, index_min_items: int = INDEX_MIN_ITEMS
    ) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._index_min_items = index_min_items
        self._current: ServingModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never wait on it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[ServingModel], object]] = []
        self._preparers: list[Callable[[ServingModel], object]] = []
        self._following = False  # set once start() has loaded what it found

    @property
    def current(self) -> ServingModel | None:
        """The version being served, or None before any version is published."""
        return self._current

    def on_change(self, listener: Callable[[ServingModel], object]) -> None:
        """Call `listener` (in the reloading thread) after each swap to a newer version,
        and when the first version is published while the process follows (the users
        active before it get lists); not for the version a process finds when it starts
        (a restarting connector must not recompute every stored list before it consumes
        anything)."""
        self._listeners.append(listener)

    def before_serving(self, prepare: Callable[[ServingModel], object]) -> None:
        """Call `prepare` (in the loading thread) with each loaded version before it is
        served, the first one included, so that what requests derive from a version (a
        filter's item table: pipelined reads of every item's metadata) is built off the
        request path. A preparer's failure is logged and the version served anyway: the
        first request that needs what it builds builds it."""
        self._preparers.append(prepare)

    def reload(self) -> bool:
        """Load the current version if it is not the one held; whether it changed."""
        with self._lock:
            version = self._store.current_version()
            if version is None or (self._current and self._current.version == version):
                return False
            try:
                artifacts = self._store.load(version)
                loaded = ServingModel.from_artifacts(version, artifacts, self._index_min_items)
            except ModelNotFoundError as exc:  # rolled back or pruned while loading
                log.warning("model version %s could not be loaded: %s", version, exc)
                return False
            self._prepare(loaded)
            previous, self._current = self._current, loaded
        log.info(
            "serving model version %s (%d items, %s)",
            version,
            len(loaded.model.items),
            "indexed" if loaded.index is not None else "brute force",
        )
        if previous is not None or self._following:
            for listener in self._listeners:
                listener(loaded)
            previous = None  # what only the old version used can now be handed back
            return_freed_memory()
        return True

    def _prepare(self, loaded: ServingModel) -> None:
        for prepare in self._preparers:
            try:
                prepare(loaded)
            except Exception as exc:  # noqa: BLE001 - preparing is ahead of need, never required
                log.warning("preparing model version %s: %s", loaded.version, exc)

    def start(self) -> None:
        """Load now, then follow announcements (and poll) in a daemon thread."""
        self.reload()
        self._following = True
        self._thread = threading.Thread(target=self._follow, name="model-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following; the held version stays usable."""
        self._stop.set()

    def _follow(self) -> None:
        delays = _FOLLOW_BACKOFF.delays()
        while not self._stop.is_set():
            try:
                self._listen()
            except redis.RedisError as exc:
                delay = next(delays)
                if delay == _FOLLOW_BACKOFF.first:  # once per outage, not once per retry
                    log.warning("model announcements interrupted (%s); retrying", exc)
                self._stop.wait(delay)
            else:
                delays = _FOLLOW_BACKOFF.delays()

    def _listen(self) -> None:
        subscription = self._store.subscribe()
        try:
            while not self._stop.is_set():
                subscription.get_message(timeout=self._poll_seconds)
                self.reload()  # announced, or the poll period passed: check the pointer
        finally:
            subscription.close()
