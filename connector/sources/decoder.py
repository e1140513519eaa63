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

    def _record(self, raw: bytes) -> Any:
        if self._source.format == "json":
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

    def __call__(self, raw: bytes) -> list[Any]:
        entry = self._records.mapped(raw)
        return [] if entry is None else [entry]
