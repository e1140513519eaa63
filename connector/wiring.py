"""Builds the connector's parts from settings, once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import redis

import schemas
from connector import redis_client
from connector.filters.store import open_filters
from connector.ingest.metadata import ITEMS, USERS, MetadataProcessor
from connector.ingest.processor import EventProcessor
from connector.ingest.writer import MAX_DEAD_LETTER_BYTES, DatasetWriter
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys
from connector.memory import fix_mmap_threshold, return_freed_memory
from connector.registry.registry import ENVELOPE, SchemaRegistry, open_registry
from connector.serving.current_model import ModelHolder
from connector.serving.filters import StoredFilters
from connector.serving.item_index import single_threaded_numerics
from connector.serving.list_refresh import ListPolicy, ListRefresher, RefreshesLists
from connector.serving.ranking import Exploration
from connector.serving.refresh_process import RefreshProcesses
from connector.settings import CommonSettings, ConnectorSettings
from connector.stores.histories import HistoryReader
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore
from connector.stores.served import RedisServedLists
from connector.stores.sessions import HistoryPolicy, SessionStore
from connector.trackers import open_trackers


def ensure_group_topics(settings: ConnectorSettings) -> None:
    """Create the group's topics: events and the Interactions dataset partitioned alike,
    item/user datasets compacted, the dead-letter topic kept like the dataset (forever)."""
    topics, partitions = settings.topics, settings.topic_partitions
    forever = {"retention.ms": "-1"}
    compacted = {"cleanup.policy": "compact"}
    dead_letter_size = {"max.message.bytes": str(MAX_DEAD_LETTER_BYTES)}
    ensure_topics(
        settings.kafka_config(),
        [
            TopicSpec(topics.events, partitions),
            TopicSpec(topics.items, partitions),
            TopicSpec(topics.users, partitions),
            TopicSpec(topics.interactions, partitions, forever),
            TopicSpec(topics.deadletter, partitions, {**forever, **dead_letter_size}),
            TopicSpec(topics.items_dataset, partitions, compacted),
            TopicSpec(topics.users_dataset, partitions, compacted),
        ],
        settings.kafka_replication_factor,
    )


def history_policy(settings: ConnectorSettings) -> HistoryPolicy:
    """The history and dedup bounds from settings."""
    return HistoryPolicy(
        length=settings.history_length,
        ttl_seconds=settings.history_ttl_seconds,
        dedup_window_seconds=settings.dedup_window_seconds,
        dedup_max_markers=settings.dedup_max_markers,
        bucket_seconds=settings.metrics_bucket_seconds,
        interacted_max=settings.interacted_items_max,
        interacted_ttl_seconds=settings.interacted_items_ttl_seconds,
    )


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


def history_reader(settings: CommonSettings, client: redis.Redis) -> HistoryReader:
    """The one reader of subjects' histories (lists, API, dashboard, rebuild)."""
    return HistoryReader(client, Keys(settings.dataset_group), settings.history_length)


@dataclass(frozen=True)
class Processors:
    """The batch processors of one connector process, one per consumed topic."""

    events: EventProcessor
    items: MetadataProcessor
    users: MetadataProcessor


def processors(settings: ConnectorSettings) -> Processors:
    """Every processor of the group, sharing one registry and one Redis client."""
    registry = open_registry(settings)
    client = redis_client.connect(settings)
    topics, config, group = settings.topics, settings.kafka_config(), settings.dataset_group
    timeout = settings.connector_append_timeout_seconds
    return Processors(
        _event_processor(settings, registry, client),
        MetadataProcessor(
            group,
            ITEMS,
            registry,
            client,
            DatasetWriter(config, topics.items_dataset, topics.deadletter, timeout),
        ),
        MetadataProcessor(
            group,
            USERS,
            registry,
            client,
            DatasetWriter(config, topics.users_dataset, topics.deadletter, timeout),
        ),
    )


def event_processor(settings: ConnectorSettings) -> EventProcessor:
    """The event-batch processor of the settings' dataset group, its dependencies checked."""
    return _event_processor(settings, open_registry(settings), redis_client.connect(settings))


def _event_processor(
    settings: ConnectorSettings, registry: SchemaRegistry, client: redis.Redis
) -> EventProcessor:
    registry.register(settings.dataset_group, ENVELOPE, schemas.load(schemas.ENVELOPE_FILE))
    registry.get(settings.dataset_group, "interactions")  # fails now if none is registered
    keys = Keys(settings.dataset_group)
    return EventProcessor(
        settings.dataset_group,
        registry,
        open_trackers(settings),
        SessionStore(client, keys, history_policy(settings)),
        RedisServedLists(client, keys),
        DatasetWriter(
            settings.kafka_config(),
            settings.topics.interactions,
            settings.topics.deadletter,
            settings.connector_append_timeout_seconds,
        ),
        _lists(settings, client),
    )


def _lists(settings: ConnectorSettings, client: redis.Redis) -> RefreshesLists | None:
    """What keeps the batch's lists fresh: child processes by default
    (serving/refresh_process.py says why), this process when so configured, or nothing."""
    if not settings.lists_enabled:
        return None
    if settings.lists_refresh_processes:
        _lists_filters(settings, client, Keys(settings.dataset_group))  # fails now, not there
        timeout = settings.lists_refresh_timeout_seconds
        return RefreshProcesses(settings, settings.lists_refresh_processes, timeout, timeout)
    return list_refresher(settings, client)


def list_refresher(
    settings: ConnectorSettings, client: redis.Redis, refresh_on_new_version: bool = True
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
    filters = _lists_filters(settings, client, keys)
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


def _lists_filters(
    settings: ConnectorSettings, client: redis.Redis, keys: Keys
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
