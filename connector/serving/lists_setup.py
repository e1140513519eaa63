"""Assembling a ListRefresher from settings: the one place the connector, its list refresh
processes, `rebuild` and the benchmarks get their precomputed-list machinery from (so a
refresh process, which builds its own, depends on this module and not on the connector's
wiring)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from connector.filters.store import open_filters
from connector.keys import Keys
from connector.memory import fix_mmap_threshold, return_freed_memory
from connector.redis_client import RedisClient
from connector.serving.current_model import ModelHolder
from connector.serving.filters import StoredFilters
from connector.serving.item_index import single_threaded_numerics
from connector.serving.list_refresh import ListPolicy, ListRefresher
from connector.serving.ranking import Exploration
from connector.settings import CommonSettings, ConnectorSettings
from connector.stores.histories import HistoryReader
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore


def list_policy(settings: ConnectorSettings) -> ListPolicy:
    """How the precomputed lists are made, from settings."""
    return ListPolicy(
        size=settings.lists_size,
        exploration=Exploration(
            settings.lists_exploration_weight, settings.lists_exploration_item_age_cut_off_days
        ),
        filter_name=settings.lists_filter,
        active_max=settings.lists_new_version_users,
        active_rate=settings.lists_new_version_rate,
    )


def history_reader(settings: CommonSettings, client: RedisClient) -> HistoryReader:
    """The one reader of subjects' histories (lists, API, dashboard, rebuild)."""
    return HistoryReader(client, Keys(settings.dataset_group), settings.history_length)


def list_refresher(
    settings: ConnectorSettings, client: RedisClient, refresh_on_new_version: bool = True
) -> ListRefresher:
    """Precomputed lists kept fresh with the served model, which follows new versions; a
    new version also refreshes every active user's list, in a background thread (unless
    another refresher of the same process tree does that). Large blocks get their own
    mappings (fix_mmap_threshold) so that thread's temporaries go back to the OS when freed
    instead of staying at the top of its malloc arena."""
    keys = Keys(settings.dataset_group)
    single_threaded_numerics()
    fix_mmap_threshold()
    holder = ModelHolder(ModelStore(client, keys), index_min_items=settings.serving_index_min_items)
    lists = RecommendationLists(client, keys, settings.history_ttl_seconds)
    filters = lists_filters(settings, client, keys)
    if filters is not None:
        holder.before_serving(filters.warm)
    refresher = ListRefresher(
        client,
        keys,
        holder,
        lists,
        list_policy(settings),
        history_reader(settings, client),
        filters,
    )
    if refresh_on_new_version:
        holder.on_change(lambda _: _in_background(refresher.refresh_active))
    holder.start()
    return refresher


def lists_filters(
    settings: ConnectorSettings, client: RedisClient, keys: Keys
) -> StoredFilters | None:
    """The filters the lists go through, if STREAMREC_LISTS_FILTER names one; an unknown
    name fails at start-up rather than on every batch."""
    if not settings.lists_filter:
        return None
    store = open_filters(settings)
    store.get(settings.lists_filter)
    return StoredFilters(store, client, keys)


def _in_background(work: Callable[[], object]) -> None:
    """Run `work` in a daemon thread: refreshing every active list can take minutes and
    must hold up neither the model follower nor ingest."""

    def then_trim() -> None:
        work()
        return_freed_memory()  # the refresh's batches are garbage now

    threading.Thread(target=then_trim, name="lists-refresh", daemon=True).start()
