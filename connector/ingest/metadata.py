"""PutItems and PutUsers records: validated upserts of item and user metadata.

A record is `{"items": [{"itemId": ..., "properties": {...}}]}` (or `users` / `userId`), as
in Personalize's PutItems / PutUsers, with up to 10 entries. Each valid entry replaces the
stored row: it is appended to the compacted Items or Users dataset topic (keyed by id) and
written to the entity's Redis hash in one transaction; invalid entries are dead-lettered.
An entry a source marks DELETED (a database row deleted, docs/sources.md) removes the
entity instead: a tombstone in the dataset topic, its hash deleted. Every write replaces
the whole row or removes it, in the batch's order, so a replay changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.exceptions import InvalidEventError, SchemaNotFoundError
from connector.ingest.limits import MAX_EVENTS_PER_RECORD, MAX_ID_LENGTH
from connector.ingest.rows import decode_json, metadata_row
from connector.ingest.writer import DatasetWriter
from connector.keys import Keys
from connector.records import DeadLetter, SourceRecord
from connector.redis_client import RedisClient, run_pipeline
from connector.registry.schema import SchemaRegistry

# An entity's row replaces its hash whole (fields the new row lacks must go): ARGV is the
# flat field, value list, empty for a deletion.
_REPLACE = """
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1
"""


@dataclass(frozen=True)
class Entity:
    """How one kind of metadata record is named: items or users."""

    dataset: str  # "items" or "users"
    list_field: str  # "items" or "users"
    id_field: str  # "itemId" or "userId"
    row_id: str  # "ITEM_ID" or "USER_ID"


# A record's value to its entries (an empty list for a record a source mapping skips; None
# is a tombstone, which only a source may expect).
EntriesDecoder = Callable[[bytes | None], list[Any]]
DELETED = "__deleted__"  # an entry with this key set removes the entity it names

ITEMS = Entity("items", "items", "itemId", "ITEM_ID")
USERS = Entity("users", "users", "userId", "USER_ID")


@dataclass(frozen=True)
class MetadataReport:
    """What one batch of metadata records did."""

    records: int
    upserted: int
    dead: int
    deleted: int = 0


@dataclass(frozen=True)
class AppendedRows:
    """A batch appended to its dataset topic, waiting for its Redis upsert."""

    rows: list[tuple[str, dict[str, Any] | None]]  # (entity id, row; None: deleted), in order
    report: MetadataReport


class MetadataProcessor:
    """Processes batches of one dataset group's item or user records."""

    def __init__(
        self,
        group: str,
        entity: Entity,
        registry: SchemaRegistry,
        client: RedisClient,
        writer: DatasetWriter,
        entries: EntriesDecoder | None = None,
    ) -> None:
        """`entries` turns a record into its entries: a source's mapping
        (connector/sources), else PutItems / PutUsers JSON."""
        self._group = group
        self._entity = entity
        self._registry = registry
        self._client = client
        self._replace = client.register_script(_REPLACE)
        self._keys = Keys(group)
        self._writer = writer
        self._decode_entries: EntriesDecoder = entries or self._put_entries

    def process(self, records: list[SourceRecord]) -> MetadataReport:
        """Validate, append to the dataset topic, then upsert the Redis hashes."""
        appended = self.append(records)
        self.upsert(appended)
        return appended.report

    def append(self, records: list[SourceRecord]) -> AppendedRows:
        """Validate `records` and append their rows and dead letters to the dataset and
        dead-letter topics; what `upsert` then writes to Redis. The connector retries the
        two steps apart, so a Redis outage does not append a batch again on every retry."""
        try:
            schema = self._registry.current(self._group, self._entity.dataset)
        except SchemaNotFoundError as exc:  # nothing to validate against: keep them aside
            unplaced = [DeadLetter(record, str(exc)) for record in records]
            self._writer.write_rows([], unplaced, 0, {})
            return AppendedRows([], MetadataReport(len(records), 0, len(unplaced)))
        if schema.spec is None:
            raise SchemaNotFoundError(f"schema {schema.id} is not a dataset schema")
        keyed: list[tuple[str, dict[str, Any] | None]] = []
        dead: list[DeadLetter] = []
        for record in records:
            self._collect(record, schema.spec, keyed, dead)
        self._writer.write_rows(keyed, dead, schema.id, schema.parsed)
        deleted = sum(1 for _, row in keyed if row is None)
        report = MetadataReport(len(records), len(keyed) - deleted, len(dead), deleted)
        return AppendedRows(keyed, report)

    def upsert(self, appended: AppendedRows) -> MetadataReport:
        """Replace each appended entity's Redis hash; the batch's report."""
        self._upsert(appended.rows)
        return appended.report

    def _collect(
        self,
        record: SourceRecord,
        spec: Any,
        rows: list[tuple[str, dict[str, Any] | None]],
        dead: list[DeadLetter],
    ) -> None:
        try:
            entries = self._entries(record)
        except InvalidEventError as exc:
            dead.append(DeadLetter(record, str(exc)))
            return
        for index, entry in enumerate(entries):
            try:
                rows.append(self._keyed(entry, spec))
            except InvalidEventError as exc:
                dead.append(DeadLetter(record, str(exc), index))

    def _entries(self, record: SourceRecord) -> list[Any]:
        return self._decode_entries(record.value)

    def _put_entries(self, raw: bytes | None) -> list[Any]:
        if raw is None:
            raise InvalidEventError("record has no value")
        entries = decode_json(raw).get(self._entity.list_field)
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_EVENTS_PER_RECORD:
            raise InvalidEventError(
                f"{self._entity.list_field} must be a list of 1 to {MAX_EVENTS_PER_RECORD} entries"
            )
        return entries

    def _keyed(self, entry: Any, spec: Any) -> tuple[str, dict[str, Any] | None]:
        """(entity id, its row), or (entity id, None) for an entry that deletes it."""
        if isinstance(entry, dict) and entry.get(DELETED):
            entity_id = entry.get(self._entity.id_field)
            if not isinstance(entity_id, str) or not 1 <= len(entity_id) <= MAX_ID_LENGTH:
                raise InvalidEventError(
                    f"{self._entity.id_field} of a deleted row must be a string of 1 to "
                    f"{MAX_ID_LENGTH} characters"
                )
            return entity_id, None
        row = self._row(entry, spec)
        return str(row[self._entity.row_id]), row

    def _row(self, entry: Any, spec: Any) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise InvalidEventError(f"each entry of {self._entity.list_field} must be an object")
        entity_id = entry.get(self._entity.id_field)
        if not isinstance(entity_id, str) or not 1 <= len(entity_id) <= MAX_ID_LENGTH:
            raise InvalidEventError(
                f"{self._entity.id_field} must be a string of 1 to {MAX_ID_LENGTH} characters"
            )
        return metadata_row(entity_id, entry.get("properties"), spec)

    def _upsert(self, keyed: list[tuple[str, dict[str, Any] | None]]) -> None:
        """Replace each entity's hash (DEL + HSET in one script, so no reader sees it half
        written) or delete it, in order, in one pipeline: on a Redis Cluster each node gets
        its entities' scripts, since entities live in slots of their own."""

        def fill(pipe: Any) -> None:
            for entity_id, row in keyed:
                fields = [] if row is None else _fields(row)
                self._replace(keys=[self._key(entity_id)], args=fields, client=pipe)

        run_pipeline(self._client, fill, _REPLACE)

    def _key(self, entity_id: str) -> str:
        return self._keys.item(entity_id) if self._entity is ITEMS else self._keys.user(entity_id)


def _fields(row: dict[str, Any]) -> list[str]:
    """A row as HSET's flat field, value list (fields without a value left out)."""
    return [part for k, v in row.items() if v is not None for part in (k, _text(v))]


def _text(value: Any) -> str:
    """Hash field values as text; numbers and booleans in their JSON spelling."""
    return value if isinstance(value, str) else json.dumps(value)
