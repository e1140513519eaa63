"""streamrec's own schema registry of every dataset group, in a compacted Kafka topic:
register, list and get versioned schemas (schema.py's SchemaRegistry).

Two kinds of entries share one id space (an entry's offset in the schemas topic):
- the versions of a group's dataset schemas (and of its PutEvents envelope), checked against
  Personalize's rules and against the previous version;
- writer schemas: what a producer's serializer registered under a subject (`subjects.py`)
  to write records of a dataset, accepted when Avro schema resolution can read them as the
  dataset's current schema (an extra field, a field renamed with an alias, a default).
Schemas are parsed once, when registered or first read from the store; lookups by (group,
dataset, version), by subject or by id are dictionary reads.
"""

from __future__ import annotations

import json
import time
from typing import Any

from connector.backoff import Backoff
from connector.exceptions import ConcurrentWriteError, SchemaNotFoundError
from connector.kafka_log import CompactedLog, LogRecord, settings_log
from connector.registry.compatibility import check_compatible, check_readable
from connector.registry.external import ExternalSchemaRegistry
from connector.registry.rules import DatasetSchema
from connector.registry.schema import (
    Readers,
    RegisteredSchema,
    SchemaRegistry,
    canonical,
    checked_schema,
    parsed_schema,
)
from connector.registry.subjects import SOURCE
from connector.settings import CommonSettings
from connector.topic_view import Rereader, TopicView

_REREAD_INTERVAL = 5.0
# An unknown id past what the view has read may be a writer schema registered a moment ago:
# re-read for it at once, but at most this often, so a stream of garbage ids stays cheap.
_UNKNOWN_ID_REREAD_INTERVAL = 1.0
# Between tries of a write another registry won (5 tries in all): the loser re-reads first.
_WRITE_BACKOFF = Backoff(first=0.2, most=0.8, tries=4)


# The versions of one dataset schema (subject None), or of one subject's writer schemas.
Slot = tuple[str, str, str | None]  # (group, dataset, subject)


class KafkaSchemaRegistry(TopicView):
    """streamrec's own registry: an in-memory view of the schemas topic, re-read
    incrementally before each lookup."""

    def __init__(self, log: CompactedLog) -> None:
        super().__init__(log, _REREAD_INTERVAL)
        self._versions: dict[Slot, list[RegisteredSchema]] = {}
        self._by_id: dict[int, RegisteredSchema] = {}
        self._unknown_ids = Rereader(self._read_new, _UNKNOWN_ID_REREAD_INTERVAL)
        self._readers = Readers()

    def _apply(self, record: LogRecord) -> None:
        self._add(_decode(record))

    def register(
        self, group: str, dataset: str, schema: dict[str, Any], subject: str | None = None
    ) -> RegisteredSchema:
        """Register `schema` as the next version of the dataset's schema, or with `subject`
        as the next writer schema of that subject; a known schema returns its version.

        Processes that register the same schema at once (connector replicas starting
        together) fence each other's transactions; the loser re-reads and finds the winner's.
        """
        slot = (group, dataset, subject)
        spec, parsed = (
            checked_schema(dataset, schema) if subject is None else (None, parsed_schema(schema))
        )
        delays = _WRITE_BACKOFF.delays()
        while True:
            self.reread()
            known = self._known(slot, schema)
            if known is not None:
                return known
            try:
                return self._write(slot, schema, parsed, spec)
            except ConcurrentWriteError:
                delay = next(delays, None)
                if delay is None:
                    raise
                time.sleep(delay)

    def _known(self, slot: Slot, schema: dict[str, Any]) -> RegisteredSchema | None:
        wanted = canonical(schema)
        same = [
            entry for entry in self._versions.get(slot, []) if canonical(entry.schema) == wanted
        ]
        return same[0] if same else None

    def _write(
        self, slot: Slot, schema: dict[str, Any], parsed: dict[str, Any], spec: DatasetSchema | None
    ) -> RegisteredSchema:
        group, dataset, subject = slot
        with self._exclusive() as writer:
            known = self._known(slot, schema)
            if known is not None:
                return known
            self._check_next(slot, schema, spec)
            version = len(self._versions.get(slot, [])) + 1
            value = {"group": group, "dataset": dataset, "version": version, "schema": schema}
            key = f"{group}/{dataset}/{version}"
            if subject is not None:
                value["subject"], key = subject, f"{group}/{dataset}/@{subject}/{version}"
            offset = writer.append(key, canonical(value).encode())
        registered = RegisteredSchema(
            offset, group, dataset, version, schema, parsed, spec, subject
        )
        self._add(registered)
        self._appended(offset)
        return registered

    def _check_next(self, slot: Slot, schema: dict[str, Any], spec: DatasetSchema | None) -> None:
        """A dataset version must keep what the previous one promised (compatibility.py); a
        writer schema must be readable as the dataset's current schema."""
        group, dataset, subject = slot
        if subject is not None:
            if dataset != SOURCE:  # a source's writer schemas are checked against its mapping
                check_readable(schema, self.get(group, dataset))
            return
        history = self._versions.get(slot, [])
        previous = history[-1].spec if history else None
        if previous is not None and spec is not None:
            check_compatible(previous, spec, history[-1].version)

    def reader_for(self, writer: RegisteredSchema, reader: RegisteredSchema) -> dict[str, Any]:
        """The parsed schema `writer`'s records are read as to get `reader`'s shape."""
        return self._readers.reader_for(writer, reader)

    def writers(self, group: str, dataset: str, subject: str) -> list[RegisteredSchema]:
        """The writer schemas registered under `subject`, by version."""
        self.reread()
        return list(self._versions.get((group, dataset, subject), []))

    def list(self, group: str) -> list[RegisteredSchema]:
        """Every version of every dataset of `group`, by dataset then version."""
        self.reread()
        found = [
            entry
            for (owner, _, subject), entries in self._versions.items()
            if owner == group and subject is None
            for entry in entries
        ]
        return sorted(found, key=lambda entry: (entry.dataset, entry.version))

    def get(self, group: str, dataset: str, version: int | None = None) -> RegisteredSchema:
        """A version of a dataset's schema; the latest when `version` is None."""
        self.reread()
        history = self._versions.get((group, dataset, None), [])
        if not history:
            raise SchemaNotFoundError(
                f"no {dataset} schema is registered in dataset group {group!r}"
            )
        if version is None:
            return history[-1]
        if not 1 <= version <= len(history):
            raise SchemaNotFoundError(
                f"{dataset} schema of dataset group {group!r} has versions 1-{len(history)}, "
                f"not {version}"
            )
        return history[version - 1]

    def current(self, group: str, dataset: str) -> RegisteredSchema:
        """The latest version, for hot paths: the store is re-read in the background at most
        every `_REREAD_INTERVAL`, so a new version is picked up within seconds and no batch
        waits for the read."""
        self.reread_if_stale()
        history = self._versions.get((group, dataset, None))
        return history[-1] if history else self.get(group, dataset)

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema whose id (as carried in the Confluent wire format) is `schema_id`.

        An unknown id the view has not read up to (a writer schema registered a moment ago)
        re-reads the store at once, at most once per `_UNKNOWN_ID_REREAD_INTERVAL`, so a
        stream of garbage ids cannot turn into a stream of reads.
        """
        if schema_id not in self._by_id and schema_id >= self._next_offset:
            self._unknown_ids.if_stale()
        if schema_id not in self._by_id:
            raise SchemaNotFoundError(f"no schema has id {schema_id}")
        return self._by_id[schema_id]

    def _add(self, entry: RegisteredSchema) -> None:
        if entry.id in self._by_id:
            return
        slot = (entry.group, entry.dataset, entry.subject)
        self._versions.setdefault(slot, []).append(entry)
        self._by_id[entry.id] = entry


def _decode(record: LogRecord) -> RegisteredSchema:
    value = json.loads(record.value or b"null")
    subject = value.get("subject")
    if subject is None:
        spec, parsed = checked_schema(value["dataset"], value["schema"])
    else:
        spec, parsed = None, parsed_schema(value["schema"])
    return RegisteredSchema(
        record.offset,
        value["group"],
        value["dataset"],
        value["version"],
        value["schema"],
        parsed,
        spec,
        subject,
    )


def open_registry(settings: CommonSettings) -> SchemaRegistry:
    """The settings' registry: the Schema Registry at STREAMREC_SCHEMA_REGISTRY_URL when
    set, else streamrec's own in the schemas topic (created on first use)."""
    if settings.schema_registry_url:
        return ExternalSchemaRegistry(settings)
    return KafkaSchemaRegistry(
        settings_log(settings, settings.schemas_topic, "streamrec-schema-registry")
    )
