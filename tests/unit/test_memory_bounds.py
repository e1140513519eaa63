"""What a long-running process keeps must not grow with the requests or versions it has seen:
after a swap only the current model version (its arrays, item index and per-version data) is
referenced, and ids that never repeat stay out of the key-escaping cache."""

from __future__ import annotations

import gc
import uuid
import weakref

import numpy as np

from connector.keys import Keys, Subject, escape
from connector.model.artifacts import ModelArtifacts
from connector.model.history import HistoryEntry
from connector.serving.current_model import ModelHolder, ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from tests.unit.test_candidates import artifacts

VERSIONS = 5


class _Store:
    """The part of ModelStore a ModelHolder uses: a pointer and a version's artifacts."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.loaded: dict[str, ModelArtifacts] = {}

    def current_version(self) -> str | None:
        return self.version

    def load(self, version: str) -> ModelArtifacts:
        return self.loaded.pop(version)  # the holder's copy is the only one kept


def test_after_several_versions_only_the_current_one_is_referenced() -> None:
    store = _Store()
    holder = ModelHolder(store, index_min_items=1)  # type: ignore[arg-type]
    seen: list[ServingModel] = []
    holder.on_change(seen.append)  # a listener that keeps nothing past the call...
    seen_refs: list[weakref.ref[object]] = []
    history = [HistoryEntry("i1", "click"), HistoryEntry("i2", "click")]
    for n in range(VERSIONS):
        store.version = f"v{n}"
        store.loaded[store.version] = artifacts(seed=n)
        assert holder.reload()
        served = holder.current
        assert served is not None and served.index is not None
        recommend_many(served, [history], 10, Exploration(), np.random.default_rng(0))
        assert served.derived  # per-version data computed on first use
        arrays = [served.popularity, served.model.params["item_embeddings"]]
        seen_refs += [weakref.ref(served), weakref.ref(served.index), *map(weakref.ref, arrays)]
        seen_refs += [weakref.ref(v) for v in served.derived.values()]
        del served, arrays
        seen.clear()  # ...so the test sees what the holder itself keeps
    gc.collect()
    alive = [ref() for ref in seen_refs if ref() is not None]
    current = holder.current
    assert current is not None and current.version == f"v{VERSIONS - 1}"
    own = {id(current), id(current.index), id(current.popularity)}
    own |= {id(current.model.params["item_embeddings"])} | {id(v) for v in current.derived.values()}
    assert {id(obj) for obj in alive} == own  # nothing of v0..v3 survives


def test_recommendation_ids_do_not_fill_the_escape_cache() -> None:
    keys = Keys("group")
    escape.cache_clear()
    for _ in range(1_000):
        keys.served(str(uuid.uuid4()))
    assert escape.cache_info().currsize == 0
    keys.history(Subject("u", "alice"))  # ids that repeat are still cached
    keys.history(Subject("u", "alice"))
    assert escape.cache_info().hits == 1
