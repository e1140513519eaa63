"""Builds the connector's parts from settings, once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

import schemas
from connector import redis_client
from connector.ingest.metadata import ITEMS, USERS, Entity, EntriesDecoder, MetadataProcessor
from connector.ingest.plan import Decoder
from connector.ingest.processor import EventProcessor
from connector.ingest.writer import MAX_DEAD_LETTER_BYTES, DatasetWriter
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys
from connector.redis_client import RedisClient
from connector.registry.registry import open_registry
from connector.registry.schema import ENVELOPE, SchemaRegistry
from connector.serving.list_refresh import RefreshesLists
from connector.serving.lists_setup import list_refresher, lists_filters
from connector.serving.refresh_process import RefreshProcesses
from connector.settings import ConnectorSettings
from connector.sources.decoder import (
    DebeziumEntries,
    EntriesSourceDecoder,
    EventSourceDecoder,
    SourceRecords,
)
from connector.sources.store import Source, open_sources
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


@dataclass(frozen=True)
class Processors:
    """The batch processors of one connector process, one per consumed topic; `sources`
    by each source's topic (docs/sources.md)."""

    events: EventProcessor
    items: MetadataProcessor
    users: MetadataProcessor
    sources: dict[str, EventProcessor | MetadataProcessor] = field(default_factory=dict)


def processors(settings: ConnectorSettings) -> Processors:
    """Every processor of the group, sharing one registry and one Redis client, with one
    for each of the group's sources as they stand when the connector starts."""
    registry = open_registry(settings)
    client = redis_client.connect(settings)
    return Processors(
        _event_processor(settings, registry, client),
        _metadata_processor(settings, ITEMS, registry, client),
        _metadata_processor(settings, USERS, registry, client),
        {
            source.topic: _source_processor(settings, source, registry, client)
            for source in open_sources(settings).list()
        },
    )


def _metadata_processor(
    settings: ConnectorSettings,
    entity: Entity,
    registry: SchemaRegistry,
    client: RedisClient,
    entries: EntriesDecoder | None = None,
) -> MetadataProcessor:
    topics = settings.topics
    dataset = topics.items_dataset if entity is ITEMS else topics.users_dataset
    writer = DatasetWriter(
        settings.kafka_config(),
        dataset,
        topics.deadletter,
        settings.connector_append_timeout_seconds,
    )
    return MetadataProcessor(settings.dataset_group, entity, registry, client, writer, entries)


def _source_processor(
    settings: ConnectorSettings, source: Source, registry: SchemaRegistry, client: RedisClient
) -> EventProcessor | MetadataProcessor:
    """The processor of one source: the event path or the items or users path, reading
    the source's records through its mapping."""
    records = SourceRecords(source, registry)
    target = source.mapping.target
    if target == "items" or target == "users":
        entity = ITEMS if target == "items" else USERS
        entries: EntriesDecoder = (
            DebeziumEntries(records, "itemId" if entity is ITEMS else "userId")
            if source.format == "debezium"
            else EntriesSourceDecoder(records)
        )
        return _metadata_processor(settings, entity, registry, client, entries)
    trackers = open_trackers(settings)

    def tracking_id() -> str | None:
        tracker = trackers.of_group(settings.dataset_group)
        return tracker.tracking_id if tracker else None

    return _event_processor(settings, registry, client, EventSourceDecoder(records, tracking_id))


def event_processor(settings: ConnectorSettings) -> EventProcessor:
    """The event-batch processor of the settings' dataset group, its dependencies checked."""
    return _event_processor(settings, open_registry(settings), redis_client.connect(settings))


def _event_processor(
    settings: ConnectorSettings,
    registry: SchemaRegistry,
    client: RedisClient,
    decode: Decoder | None = None,
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
        decode,
    )


def _lists(settings: ConnectorSettings, client: RedisClient) -> RefreshesLists | None:
    """What keeps the batch's lists fresh: child processes by default
    (serving/refresh_process.py says why), this process when so configured, or nothing."""
    if not settings.lists_enabled:
        return None
    if settings.lists_refresh_processes:
        lists_filters(settings, client, Keys(settings.dataset_group))  # fails now, not there
        timeout = settings.lists_refresh_timeout_seconds
        return RefreshProcesses(settings, settings.lists_refresh_processes, timeout, timeout)
    return list_refresher(settings, client)
