"""One FULL or UPDATE run against the real services: read, train or update, publish.

The steps themselves live in worker/training/pipeline.py (pure, testable on in-memory data); this
module only wires them to Kafka (training data, Items dataset) and Redis (model versions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from connector.exceptions import ModelNotFoundError
from connector.keys import Keys
from connector.model.model import Model
from connector.redis_client import connect
from connector.stores.model_versions import ModelStore
from worker.data.cache import load_training_data
from worker.data.catalog import ItemCatalog, read_items
from worker.settings import WorkerSettings
from worker.training.pipeline import Catalog, Stopped, full_model, updated_model

log = logging.getLogger("streamrec.worker")
Mode = Literal["full", "update"]


def run(
    mode: Mode,
    settings: WorkerSettings,
    should_stop: Callable[[], bool] = bool,
    report: Callable[[str], None] | None = None,
) -> str:
    """Run `mode` once and publish the result; the id of the new version. Raises Stopped,
    with nothing published, when `should_stop()` turns true between steps. `report` gets
    a line per step for a person watching."""
    say = report or (lambda _line: None)
    store = ModelStore(connect(settings), Keys(settings.dataset_group))
    say(f"reading the Interactions dataset of {settings.dataset_group!r}")
    data = load_training_data(settings)
    say(f"{len(data):,} interactions of {len(data.users):,} users and {len(data.items):,} items")
    based_on = store.current_version()
    catalog = item_catalog(
        read_items(settings), _item_ages(store, based_on), _retired(store, based_on)
    )
    _check(should_stop)
    if mode == "full":
        model, arrays = full_model(data, settings, catalog, should_stop, say)
    else:
        if based_on is None:
            raise ModelNotFoundError(
                f"no model version in {settings.dataset_group!r} to update: run "
                "`streamrec train --mode full` first"
            )
        current = Model.from_artifacts(store.load(based_on))
        model, arrays = updated_model(current, data, catalog, based_on)
    _check(should_stop)
    say(f"publishing {len(model.items):,} items")
    version = store.publish(model.to_artifacts(arrays), keep=settings.model_keep_versions)
    log.info("published model version %s (%s, %d items)", version, mode, len(model.items))
    return version


def _item_ages(store: ModelStore, version: str | None) -> dict[str, int] | None:
    """item_created of `version` (None when there is no version, or it is gone)."""
    if version is None:
        return None
    try:
        return {
            item: int(value) for item, value in store.item_values(version, "item_created").items()
        }
    except ModelNotFoundError:
        return None


def _retired(store: ModelStore, version: str | None) -> frozenset[str]:
    """The items `version` retired (none when there is no version, or it is gone)."""
    if version is None:
        return frozenset()
    try:
        values = store.item_values(version, "item_retired")
    except ModelNotFoundError:
        return frozenset()
    return frozenset(item for item, value in values.items() if value)


def item_catalog(
    items: ItemCatalog,
    earlier_created: dict[str, int] | None = None,
    earlier_retired: frozenset[str] = frozenset(),
) -> Catalog:
    """The Items dataset as the pipeline needs it: ids, creation times, the string
    metadata new items are placed by, the item ages of the version being replaced, and the
    retired items: deleted now, or retired by that version and not created again (a
    compacted topic forgets a tombstone after a while; the versions remember it)."""
    metadata = {
        item: {
            name: str(values[position])
            for name, values in items.metadata.items()
            if isinstance(values[position], str)
        }
        for position, item in enumerate(items.ids)
    }
    created = dict(zip(items.ids, items.creation_timestamp, strict=True))
    retired = frozenset(items.deleted) | (earlier_retired - set(items.ids))
    return Catalog(list(items.ids), created, metadata, earlier_created, retired)


def _check(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise Stopped
