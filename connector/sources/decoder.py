"""A source's records turned into PutEvents envelopes as they are read, for the event path
(ingest/processor.py's `decode`): decoded as the source's format says, mapped, and wrapped
with the group's tracking id, so validation, dedup and dead letters are the event path's.
A record the mapping cannot map is dead-lettered with the source, its version and the
failed step in the reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connector import wire
from connector.exceptions import InvalidEventError, MappingError, SchemaNotFoundError
from connector.ingest.metadata import DELETED
from connector.ingest.rows import decode_json
from connector.registry.schema import SchemaRegistry
from connector.sources.store import Source


class SourceRecords:
    """A source's record bytes, decoded as its format says and mapped."""

    def __init__(self, source: Source, registry: SchemaRegistry) -> None:
        self._source = source
        self._registry = registry
        self._where = f"source {source.name!r} (version {source.version})"

    def mapped(self, raw: bytes) -> dict[str, Any] | None:
        """The mapping's entry for the record (None: skipped); InvalidEventError naming
        the source, its version and the step that failed."""
        record = self._record(raw)
        try:
            return self._source.mapping.apply(record)
        except MappingError as exc:
            raise InvalidEventError(f"{self._where}: {exc}") from exc

    def change(self, raw: bytes) -> tuple[str, Any, Any]:
        """A Debezium change event's (op, row before, row after), with or without the JSON
        converter's schema envelope, or Avro through the registry."""
        event = self._record(raw)
        if isinstance(event, dict) and "payload" in event and "schema" in event:
            event = event["payload"]
        if not isinstance(event, dict) or not isinstance(event.get("op"), str):
            raise InvalidEventError(f"{self._where}: not a Debezium change event (no op)")
        return event["op"], event.get("before"), event.get("after")

    def map_row(self, row: Any) -> dict[str, Any] | None:
        """The mapping's entry for one row of a change event."""
        try:
            return self._source.mapping.apply(row)
        except MappingError as exc:
            raise InvalidEventError(f"{self._where}: {exc}") from exc

    def deleted_id(self, row: Any) -> str:
        """The entity id a deleted row names (the mapping's id rule on the row before)."""
        rule = self._source.mapping.id_rule()
        try:
            entity_id = rule.value(row)
        except MappingError as exc:
            raise InvalidEventError(f"{self._where}: {exc}") from exc
        if not isinstance(entity_id, str):
            raise InvalidEventError(
                f"{self._where}: a delete without the row before it (set the table's replica "
                f"identity to full): {rule.target} has no value"
            )
        return entity_id

    def _record(self, raw: bytes) -> Any:
        json_record = self._source.format == "json" or (
            self._source.format == "debezium" and not wire.is_wire_format(raw)
        )
        if json_record:
            try:
                return decode_json(raw)
            except InvalidEventError as exc:
                raise InvalidEventError(f"{self._where}: {exc}") from exc
        if not wire.is_wire_format(raw):
            raise InvalidEventError(
                f"{self._where}: an avro source's record must be in the Confluent wire format"
            )
        try:
            schema = self._registry.by_id(wire.schema_id(raw))
        except SchemaNotFoundError as exc:
            raise InvalidEventError(
                f"{self._where}: unknown schema id {wire.schema_id(raw)}"
            ) from exc
        return wire.decode(raw, schema.parsed)


class EventSourceDecoder:
    """Record bytes of one `events` source to its PutEvents envelope (None: skipped)."""

    def __init__(self, records: SourceRecords, tracking_id: Callable[[], str | None]) -> None:
        self._records = records
        self._tracking_id = tracking_id

    def __call__(self, raw: bytes) -> dict[str, Any] | None:
        event = self._records.mapped(raw)
        if event is None:
            return None
        user = event.pop("userId", None)
        session = event.pop("sessionId", None)
        envelope: dict[str, Any] = {
            "trackingId": self._tracking_id(),
            "sessionId": session if session is not None else user,
            "eventList": [event],
        }
        if user is not None:
            envelope["userId"] = user
        return envelope


class EntriesSourceDecoder:
    """Record bytes of one `items` or `users` source to its entries ([]: skipped)."""

    def __init__(self, records: SourceRecords) -> None:
        self._records = records

    def __call__(self, raw: bytes | None) -> list[Any]:
        if raw is None:
            raise InvalidEventError("record has no value")
        entry = self._records.mapped(raw)
        return [] if entry is None else [entry]


class DebeziumEntries:
    """Debezium change events of an items or users table to entries: a create, update or
    snapshot read (`c`, `u`, `r`) is the row after it, mapped; a delete (`d`) removes the
    entity its row before names; the tombstone that follows a delete, truncates (`t`) and
    messages (`m`) are skipped."""

    def __init__(self, records: SourceRecords, id_field: str) -> None:
        self._records = records
        self._id_field = id_field

    def __call__(self, raw: bytes | None) -> list[Any]:
        if raw is None:
            return []  # Debezium's tombstone after a delete: the delete did the work
        op, before, after = self._records.change(raw)
        if op in ("c", "u", "r"):
            entry = self._records.map_row(after)
            return [] if entry is None else [entry]
        if op == "d":
            return [{self._id_field: self._records.deleted_id(before), DELETED: True}]
        return []
