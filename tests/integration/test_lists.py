"""Precomputed lists on the real services: events through the connector's batch path change
the user's list in Redis at once, from the first event of a new user, through an anonymous
session and its login, and again when a new model version is published."""

from __future__ import annotations

import json
import os
import signal
import time
from itertools import count

import numpy as np
import pytest
import redis

from connector.exceptions import FilterNotFoundError, ListRefreshUnavailableError
from connector.filters.store import open_filters
from connector.ingest.processor import EventProcessor
from connector.keys import Keys, Subject
from connector.model.model import Hyperparameters
from connector.records import SourceRecord
from connector.redis_client import open_url
from connector.serving.refresh_process import RefreshProcesses
from connector.settings import ConnectorSettings
from connector.stores.lists import RecommendationLists, StoredList
from connector.stores.model_versions import ModelStore
from connector.wiring import event_processor, processors
from tests.integration.helpers import prepare_group, put_events
from tests.memory_scenario import peak_and_freed
from worker.data.interactions import from_rows
from worker.training.fit import train
from worker.training.pipeline import Catalog, item_arrays

ITEMS = 30
_offsets = count()


def chain_model_version(settings: ConnectorSettings, epochs: int = 12) -> str:
    """Publish a model trained on users walking a chain of items: after i<k> comes i<k+1>."""
    rows = [
        {"USER_ID": f"w{u}", "ITEM_ID": f"i{(u + step) % ITEMS}", "TIMESTAMP": 1000 + step}
        for u in range(90)
        for step in range(12)
    ]
    data = from_rows(rows)
    model = train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=epochs), seed=3)
    arrays = item_arrays(model, data, Catalog([], {}, {}))
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    return store.publish(model.to_artifacts(arrays), keep=3)


@pytest.fixture
def lists(settings: ConnectorSettings, redis_db: redis.Redis) -> RecommendationLists:
    return RecommendationLists(redis_db, Keys(settings.dataset_group), 3600)


@pytest.fixture
def quiet(settings: ConnectorSettings, redis_db: redis.Redis) -> ConnectorSettings:
    """A group with the chain model published, and lists that do not explore."""
    prepare_group(settings)
    chain_model_version(settings)
    return settings.model_copy(update={"lists_exploration_weight": 0.0})


@pytest.fixture
def processor(quiet: ConnectorSettings) -> EventProcessor:
    return event_processor(quiet)


def give_history(
    client: redis.Redis, settings: ConnectorSettings, user: Subject, item: str
) -> None:
    """A history of one event on `item`, a member as parse_member reads it."""
    client.zadd(Keys(settings.dataset_group).history(user), {json.dumps({"item": item}): 1})


def send(
    processor: EventProcessor,
    settings: ConnectorSettings,
    session: str,
    item: str,
    user: str | None = None,
) -> None:
    tracking_id = processor._trackers.of_group(settings.dataset_group).tracking_id  # type: ignore[union-attr]
    event = {"eventType": "click", "itemId": item, "sentAt": 5000 + next(_offsets)}
    record = SourceRecord(
        settings.topics.events,
        0,
        next(_offsets),
        b"k",
        put_events(tracking_id, session, [event], user),
    )
    report = processor.process([record])
    assert report.dead == 0 and report.lists_refreshed >= 1


def top(stored: StoredList | None, n: int = 3) -> list[str]:
    assert stored is not None
    return [item for item, _ in stored.items[:n]]


def test_a_new_users_first_event_makes_the_list_personal_and_the_next_moves_it(
    processor: EventProcessor, settings: ConnectorSettings, lists: RecommendationLists
) -> None:
    user = Subject("u", "newcomer")
    assert lists.read(user) is None
    send(processor, settings, "s-new", "i3", user="newcomer")
    first = lists.read(user)
    assert "i4" in top(first) and "i3" not in [item for item, _ in first.items]  # type: ignore[union-attr]
    assert len(first.items) == ITEMS - 1  # every other item, fewer than lists_size  # type: ignore[union-attr]
    send(processor, settings, "s-new", "i17", user="newcomer")
    assert "i18" in top(lists.read(user))


def test_an_anonymous_session_then_login_keeps_personal_results(
    processor: EventProcessor, settings: ConnectorSettings, lists: RecommendationLists
) -> None:
    send(processor, settings, "s-anon", "i8")
    assert "i9" in top(lists.read(Subject("s", "s-anon")))
    send(processor, settings, "s-anon", "i9", user="logged-in")
    after_login = lists.read(Subject("u", "logged-in"))
    assert "i10" in top(after_login)
    listed = [item for item, _ in after_login.items]  # type: ignore[union-attr]
    assert "i8" not in listed and "i9" not in listed  # the anonymous history came along


def test_a_new_model_version_refreshes_active_users_lists(
    processor: EventProcessor, settings: ConnectorSettings, lists: RecommendationLists
) -> None:
    send(processor, settings, "s-a", "i2", user="active")
    before = lists.read(Subject("u", "active"))
    newer = chain_model_version(settings, epochs=2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = lists.read(Subject("u", "active"))
        if current is not None and current.version == newer:
            break
        time.sleep(0.2)
    assert current is not None and current.version == newer != before.version  # type: ignore[union-attr]
    scores = np.array([score for _, score in current.items])
    assert (np.diff(scores) <= 0).all()


def test_users_whose_events_came_before_any_model_get_lists_from_the_first_version(
    settings: ConnectorSettings, lists: RecommendationLists
) -> None:
    """After an import and the first FULL, active users have lists without a new event."""
    tracking_id = prepare_group(settings)
    processor = event_processor(settings.model_copy(update={"lists_exploration_weight": 0.0}))
    for n, user in enumerate(["early", "earlier"]):
        event = {"eventType": "click", "itemId": f"i{3 + n}", "sentAt": 4000 + n}
        value = put_events(tracking_id, f"s-{user}", [event], user)
        record = SourceRecord(settings.topics.events, 0, next(_offsets), b"k", value)
        report = processor.process([record])
        assert (report.appended, report.lists_refreshed) == (1, 0)  # no model yet
    assert lists.read(Subject("u", "early")) is None
    version = chain_model_version(settings)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and lists.read(Subject("u", "earlier")) is None:
        time.sleep(0.2)
    early, earlier = lists.read(Subject("u", "early")), lists.read(Subject("u", "earlier"))
    assert early is not None and earlier is not None
    assert early.version == earlier.version == version
    assert "i4" in top(early) and "i5" in top(earlier)  # personal: the chain's next items


def test_a_new_version_refreshes_only_the_most_recently_active_users(
    quiet: ConnectorSettings, redis_db: redis.Redis, lists: RecommendationLists
) -> None:
    from connector.serving import lists_setup

    users = [Subject("u", f"a{n}") for n in range(5)]
    for user in users:
        give_history(redis_db, quiet, user, "i3")
    bounded = quiet.model_copy(update={"lists_new_version_users": 3})
    refresher = lists_setup.list_refresher(bounded, redis_db, refresh_on_new_version=False)
    lists.mark_active(users[:2])
    time.sleep(0.01)
    lists.mark_active(users[2:])  # a2, a3, a4 most recent
    assert refresher.refresh_active() == 3
    assert [lists.read(user) is not None for user in users] == [False, False, True, True, True]


def test_lists_go_through_the_configured_filter(
    settings: ConnectorSettings, redis_db: redis.Redis, lists: RecommendationLists
) -> None:
    prepare_group(settings)
    chain_model_version(settings)
    blocked = {"items": [{"itemId": "i4", "properties": {"genres": "Blocked"}}]}
    item_record = SourceRecord(settings.topics.items, 0, 0, b"k", json.dumps(blocked).encode())
    assert processors(settings).items.process([item_record]).dead == 0
    open_filters(settings).create("no-blocked", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Blocked")')
    filtered = event_processor(
        settings.model_copy(update={"lists_exploration_weight": 0.0, "lists_filter": "no-blocked"})
    )
    send(filtered, settings, "s-f", "i3", user="filtered")
    listed = [item for item, _ in lists.read(Subject("u", "filtered")).items]  # type: ignore[union-attr]
    assert "i4" not in listed and "i5" in listed and len(listed) == ITEMS - 2


def test_an_unknown_lists_filter_fails_at_start(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    prepare_group(settings)
    with pytest.raises(FilterNotFoundError, match="no-such-filter"):
        event_processor(settings.model_copy(update={"lists_filter": "no-such-filter"}))


def test_lists_are_refreshed_in_a_child_process_that_is_replaced_when_it_dies(
    quiet: ConnectorSettings, redis_db: redis.Redis, lists: RecommendationLists
) -> None:
    refresher = RefreshProcesses(quiet, 1, start_seconds=120, batch_seconds=120)
    try:
        user = Subject("u", "in-child")
        give_history(redis_db, quiet, user, "i3")
        assert refresher.refresh([user]) == 1
        child = refresher._slots[0]
        assert child is not None and child.process.pid != os.getpid()
        assert "i4" in top(lists.read(user))
        os.kill(child.process.pid, signal.SIGKILL)
        child.process.join(10)
        with pytest.raises(ListRefreshUnavailableError):
            refresher.refresh([user])  # the batch fails, and is retried by the connector
        redis_db.delete(Keys(quiet.dataset_group).recommendations(user))
        assert refresher.refresh([user]) == 1  # by a new child
        assert refresher._slots[0] is not child and "i4" in top(lists.read(user))
    finally:
        refresher.close()
    assert not child.process.is_alive()


def test_two_refresh_processes_share_a_batch_and_write_every_list(
    quiet: ConnectorSettings, redis_db: redis.Redis, lists: RecommendationLists
) -> None:
    refresher = RefreshProcesses(quiet, 2, start_seconds=120, batch_seconds=120)
    users = [Subject("u", f"split-{n}") for n in range(5)]
    try:
        for n, user in enumerate(users):
            give_history(redis_db, quiet, user, f"i{n}")
        assert refresher.refresh(users) == 5
        pids = {child.process.pid for child in refresher._slots if child is not None}
        assert len(pids) == 2 and os.getpid() not in pids
        for n, user in enumerate(users):
            assert f"i{n + 1}" in top(lists.read(user))  # each from its own history
    finally:
        refresher.close()


def test_lists_refreshed_while_the_next_batch_is_recorded_end_as_after_each_batch(
    processor: EventProcessor, settings: ConnectorSettings, lists: RecommendationLists
) -> None:
    """The connector's order: batch n+1 is recorded before batch n's lists are refreshed.
    The lists n's refresh writes already reflect n+1 (they are read from Redis), and n+1's
    refresh, last, leaves them as refreshing after each batch would."""
    tracking_id = processor._trackers.of_group(settings.dataset_group).tracking_id  # type: ignore[union-attr]

    def batch(item: str, ts: int) -> list[SourceRecord]:
        event = {"eventType": "click", "itemId": item, "sentAt": ts}
        value = put_events(tracking_id, "s-overlap", [event], "overlap")
        return [SourceRecord(settings.topics.events, 0, next(_offsets), b"k", value)]

    user = Subject("u", "overlap")
    first = processor.prepare(batch("i5", 7000))
    processor.apply(first, processor.append(first))
    second = processor.prepare(batch("i20", 7001), in_flight=first)
    processor.apply(second, processor.append(second))
    assert processor.refresh_lists([first]) == 1
    assert "i21" in top(lists.read(user))  # n's refresh already sees n+1's event
    assert processor.refresh_lists([second]) == 1
    overlapped = lists.read(user)
    assert overlapped is not None and "i21" in top(overlapped)
    assert not {"i5", "i20"} & {item for item, _ in overlapped.items}


# What the connector's list refresher sets for the process: after list_refresher(), a
# thread's 8 MB temporaries (allocated once glibc's mmap threshold has moved up past them)
# go back to the OS when freed, without a trim.
REFRESHER_SETUP = """
import redis
from connector.settings import ConnectorSettings
from connector.serving.lists_setup import list_refresher
from connector.redis_client import open_url
settings = ConnectorSettings()
list_refresher(settings, open_url(settings.redis_url))
"""


def test_the_list_refresher_keeps_large_temporaries_out_of_the_threads_arenas(
    settings: ConnectorSettings, service_env: dict[str, str], redis_db: redis.Redis
) -> None:
    prepare_group(settings)
    chain_model_version(settings)
    peak, freed = peak_and_freed(REFRESHER_SETUP, service_env)
    assert freed < peak - 30  # without fix_mmap_threshold all 40 MB stayed resident
