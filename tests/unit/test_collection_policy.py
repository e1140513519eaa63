"""The connector app, once started, leaves its startup objects out of garbage collection and
collects young objects less often (connector/app.py, _collect_only_new_objects)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from connector import app as connector_app
from connector.settings import ConnectorSettings


@pytest.fixture
def restored_collection() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _started(app: Any) -> None:
    """Run what faust runs once the app has started: the tasks `app.task` registered
    (faust keeps them in `_app_tasks` and awaits each in `on_started`)."""

    async def start() -> None:
        for task in app._app_tasks:
            await task()

    asyncio.run(start())


def test_a_started_connector_app_freezes_startup_objects(restored_collection: None) -> None:
    unused = SimpleNamespace(process=lambda records: None)
    processors: Any = SimpleNamespace(events=unused, items=unused, users=unused, sources={})
    app = connector_app.create_app(ConnectorSettings(), processors)
    generations = gc.get_threshold()[1:]
    assert gc.get_freeze_count() == 0
    _started(app)
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (connector_app.YOUNG_COLLECTION_ALLOCATIONS, *generations)
