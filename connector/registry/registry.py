"""The schema registry of every dataset group: register, list and get versioned schemas.

Schemas are checked against Personalize's rules and parsed once, when registered or first
read from the store; lookups by (group, dataset, version) or by id are dictionary reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

import fastavro
from fastavro.schema import SchemaParseException

from connector.backoff import Backoff
from connector.exceptions import ConcurrentWriteError, SchemaNotFoundError, SchemaRuleError
from connector.kafka_log import CompactedLog, LogRecord, settings_log
from connector.registry.compatibility import check_compatible
from connector.registry.rules import DatasetSchema, check_schema
from connector.settings import CommonSettings
from connector.topic_view import TopicView

ENVELOPE = "putevents"  # the PutEvents record producers encode in the Confluent wire format
_REREAD_INTERVAL = 5.0
# Between tries of a write another registry won (5 tries in all): the loser re-reads first.
_WRITE_BACKOFF = Backoff(first=0.2, most=0.8, tries=4)


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a dataset schema of one dataset group."""

    id: int
    group: str
    dataset: str
    version: int
    schema: dict[str, Any]
    parsed: dict[str, Any]
    spec: DatasetSchema | None  # None for the PutEvents envelope, which has no dataset rules

    def summary(self) -> dict[str, Any]:
        """What `schemas list` and `schemas get` show about this version."""
        return {
            "group": self.group,
            "dataset": self.dataset,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }


class SchemaRegistry(TopicView):
    """In-memory view of the schema store, re-read incrementally before each lookup."""

    def __init__(self, log: CompactedLog) -> None:
        super().__init__(log, _REREAD_INTERVAL)
        self._versions: dict[tuple[str, str], list[RegisteredSchema]] = {}
        self._by_id: dict[int, RegisteredSchema] = {}

    def _apply(self, record: LogRecord) -> None:
        self._add(_decode(record))

    def register(self, group: str, dataset: str, schema: dict[str, Any]) -> RegisteredSchema:
        """Register `schema` as the next version; a known schema returns its version.

        Processes that register the same schema at once (connector replicas starting
        together) fence each other's transactions; the loser re-reads and finds the winner's.
        """
        spec, parsed = _checked(dataset, schema)
        delays = _WRITE_BACKOFF.delays()
        while True:
            self.reread()
            known = self._known(group, dataset, schema)
            if known is not None:
                return known
            try:
                return self._write(group, dataset, schema, parsed, spec)
            except ConcurrentWriteError:
                delay = next(delays, None)
                if delay is None:
                    raise
                time.sleep(delay)

    def _known(self, group: str, dataset: str, schema: dict[str, Any]) -> RegisteredSchema | None:
        history = self._versions.get((group, dataset), [])
        same = [entry for entry in history if _canonical(entry.schema) == _canonical(schema)]
        return same[0] if same else None

    def _write(
        self,
        group: str,
        dataset: str,
        schema: dict[str, Any],
        parsed: dict[str, Any],
        spec: DatasetSchema | None,
    ) -> RegisteredSchema:
        with self._exclusive() as writer:
            known = self._known(group, dataset, schema)
            if known is not None:
                return known
            history = self._versions.get((group, dataset), [])
            previous = history[-1].spec if history else None
            if previous is not None and spec is not None:
                check_compatible(previous, spec, history[-1].version)
            version = len(history) + 1
            value = {"group": group, "dataset": dataset, "version": version, "schema": schema}
            offset = writer.append(f"{group}/{dataset}/{version}", _canonical(value).encode())
        registered = RegisteredSchema(offset, group, dataset, version, schema, parsed, spec)
        self._add(registered)
        self._appended(offset)
        return registered

    def list(self, group: str) -> list[RegisteredSchema]:
        """Every version of every dataset of `group`, by dataset then version."""
        self.reread()
        found = [
            entry
            for (owner, _), entries in self._versions.items()
            if owner == group
            for entry in entries
        ]
        return sorted(found, key=lambda entry: (entry.dataset, entry.version))

    def get(self, group: str, dataset: str, version: int | None = None) -> RegisteredSchema:
        """A version of a dataset's schema; the latest when `version` is None."""
        self.reread()
        history = self._versions.get((group, dataset), [])
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
        history = self._versions.get((group, dataset))
        return history[-1] if history else self.get(group, dataset)

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema whose id (as carried in the Confluent wire format) is `schema_id`.

        Unknown ids re-read the store at most once per `_REREAD_INTERVAL`, so a stream of
        garbage ids cannot turn into a stream of reads.
        """
        if schema_id not in self._by_id:
            self._rereader.if_stale()
        if schema_id not in self._by_id:
            raise SchemaNotFoundError(f"no schema has id {schema_id}")
        return self._by_id[schema_id]

    def _add(self, entry: RegisteredSchema) -> None:
        if entry.id in self._by_id:
            return
        self._versions.setdefault((entry.group, entry.dataset), []).append(entry)
        self._by_id[entry.id] = entry


def _decode(record: LogRecord) -> RegisteredSchema:
    value = json.loads(record.value or b"null")
    spec, parsed = _checked(value["dataset"], value["schema"])
    return RegisteredSchema(
        record.offset,
        value["group"],
        value["dataset"],
        value["version"],
        value["schema"],
        parsed,
        spec,
    )


def _checked(dataset: str, schema: dict[str, Any]) -> tuple[DatasetSchema | None, dict[str, Any]]:
    """Dataset schemas pass Personalize's rules; the envelope only has to be valid Avro."""
    if dataset != ENVELOPE:
        spec = check_schema(dataset, schema)
        return spec, spec.parsed
    try:
        return None, cast(dict[str, Any], fastavro.parse_schema(schema))
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaRuleError(f"not a valid Avro schema: {exc}") from exc


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def open_registry(settings: CommonSettings) -> SchemaRegistry:
    """The registry stored in the settings' schemas topic (created on first use)."""
    return SchemaRegistry(
        settings_log(settings, settings.schemas_topic, "streamrec-schema-registry")
    )
