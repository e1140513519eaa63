"""The Items and Users datasets as the worker needs them: the latest row of every entity.

Both datasets are compacted topics keyed by id where each record replaces the whole row
(connector/ingest/metadata.py), so the latest record of a key is the entity; a record
without a value (a tombstone) deletes it. Each key lives in one partition, so reading the
partitions in order and letting later records win is exact. Both datasets are optional in
Personalize: a group without a registered schema or topic has an empty catalog.

Metadata is kept as columns (field -> values aligned with `ids`, None where absent), because
training turns each field into one input column, not per-entity dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from connector.exceptions import SchemaNotFoundError
from connector.registry.registry import open_registry
from connector.registry.schema import SchemaRegistry
from connector.settings import CommonSettings
from worker.data.reader import RowDecoder, TopicReader

CREATION_TIMESTAMP = "CREATION_TIMESTAMP"


@dataclass(frozen=True)
class Catalog:
    """Entities of one dataset: ids (sorted) and their metadata columns."""

    ids: list[str]
    metadata: dict[str, list[Any]]  # field -> value per id (None: absent)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Position of every id in `ids` (built once, on first use)."""
        return {entity: position for position, entity in enumerate(self.ids)}

    def row(self, entity: str) -> dict[str, Any]:
        """The metadata of one entity (KeyError if unknown)."""
        position = self.positions[entity]
        return {name: values[position] for name, values in self.metadata.items()}


@dataclass(frozen=True)
class ItemCatalog(Catalog):
    """Items, with their creation time (Unix seconds; None when the row has none), and the
    ids whose latest record is a tombstone: deleted while the topic still shows it."""

    creation_timestamp: list[int | None]
    deleted: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserCatalog(Catalog):
    """Users with their metadata."""


def read_items(settings: CommonSettings, registry: SchemaRegistry | None = None) -> ItemCatalog:
    """The latest row of every item in the group's Items dataset."""
    fields, rows, deleted = _latest_rows(settings, registry, "items", settings.topics.items_dataset)
    ids = sorted(rows)
    stamps = [rows[item].get(CREATION_TIMESTAMP) for item in ids]
    metadata = _columns(ids, rows, [name for name in fields if name != CREATION_TIMESTAMP])
    created = [None if s is None else int(s) for s in stamps]
    return ItemCatalog(ids, metadata, created, deleted)


def read_users(settings: CommonSettings, registry: SchemaRegistry | None = None) -> UserCatalog:
    """The latest row of every user in the group's Users dataset."""
    fields, rows, _ = _latest_rows(settings, registry, "users", settings.topics.users_dataset)
    ids = sorted(rows)
    return UserCatalog(ids, _columns(ids, rows, fields))


def _latest_rows(
    settings: CommonSettings, registry: SchemaRegistry | None, dataset: str, topic: str
) -> tuple[list[str], dict[str, dict[str, Any]], tuple[str, ...]]:
    """(metadata field names of the current schema, latest row per key, keys whose latest
    record is a tombstone)."""
    registry = registry or open_registry(settings)
    try:
        spec = registry.get(settings.dataset_group, dataset).spec
    except SchemaNotFoundError:
        return [], {}, ()
    fields = [field.name for field in spec.metadata_fields] if spec is not None else []
    decode = RowDecoder(registry, settings.dataset_group, dataset)
    rows: dict[str, dict[str, Any]] = {}
    deleted: set[str] = set()
    with TopicReader(settings, topic) as reader:
        for record in reader.records():
            if record.value is None:
                rows.pop(record.key, None)
                deleted.add(record.key)
            else:
                rows[record.key] = decode(record.value)
                deleted.discard(record.key)
    return fields, rows, tuple(sorted(deleted))


def _columns(
    ids: list[str], rows: dict[str, dict[str, Any]], fields: list[str]
) -> dict[str, list[Any]]:
    """Field -> value per id; rows written under an older schema lack newer fields (None)."""
    return {name: [rows[entity].get(name) for entity in ids] for name in fields}
