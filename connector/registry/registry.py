"""The schema registry of every dataset group: register, list and get versioned schemas.

Schemas are checked against Personalize's rules and parsed once, when registered or first
read from the store; lookups by (group, dataset, version) or by id are dictionary reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from connector.exceptions import SchemaNotFoundError
from connector.registry.compatibility import check_compatible
from connector.registry.rules import DatasetSchema, check_schema
from connector.registry.store import LogRecord, SchemaLog
from connector.settings import CommonSettings


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a dataset schema of one dataset group."""

    id: int
    group: str
    dataset: str
    version: int
    schema: dict[str, Any]
    spec: DatasetSchema

    def summary(self) -> dict[str, Any]:
        """What `schemas list` and `schemas get` show about this version."""
        return {
            "group": self.group,
            "dataset": self.dataset,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }


class SchemaRegistry:
    """In-memory view of the schema store, refreshed incrementally before each lookup."""

    def __init__(self, log: SchemaLog) -> None:
        self._log = log
        self._next_offset = 0
        self._versions: dict[tuple[str, str], list[RegisteredSchema]] = {}
        self._by_id: dict[int, RegisteredSchema] = {}

    def refresh(self) -> None:
        """Read the records appended since the last refresh."""
        for record in self._log.read_from(self._next_offset):
            self._add(_decode(record))
            self._next_offset = record.offset + 1

    def register(self, group: str, dataset: str, schema: dict[str, Any]) -> RegisteredSchema:
        """Register `schema` as the next version; a known schema returns its version."""
        spec = check_schema(dataset, schema)
        with self._log.exclusive() as writer:
            self.refresh()
            history = self._versions.get((group, dataset), [])
            same = [entry for entry in history if _canonical(entry.schema) == _canonical(schema)]
            if same:
                return same[0]
            if history:
                check_compatible(history[-1].spec, spec, history[-1].version)
            version = len(history) + 1
            value = {"group": group, "dataset": dataset, "version": version, "schema": schema}
            offset = writer.append(f"{group}/{dataset}/{version}", _canonical(value).encode())
        registered = RegisteredSchema(offset, group, dataset, version, schema, spec)
        self._add(registered)
        self._next_offset = max(self._next_offset, offset + 1)
        return registered

    def list(self, group: str) -> list[RegisteredSchema]:
        """Every version of every dataset of `group`, by dataset then version."""
        self.refresh()
        found = [
            entry
            for (owner, _), entries in self._versions.items()
            if owner == group
            for entry in entries
        ]
        return sorted(found, key=lambda entry: (entry.dataset, entry.version))

    def get(self, group: str, dataset: str, version: int | None = None) -> RegisteredSchema:
        """A version of a dataset's schema; the latest when `version` is None."""
        self.refresh()
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

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema whose id (as carried in the Confluent wire format) is `schema_id`."""
        if schema_id not in self._by_id:
            self.refresh()
        if schema_id not in self._by_id:
            raise SchemaNotFoundError(f"no schema has id {schema_id}")
        return self._by_id[schema_id]

    def _add(self, entry: RegisteredSchema) -> None:
        if entry.id in self._by_id:
            return
        self._versions.setdefault((entry.group, entry.dataset), []).append(entry)
        self._by_id[entry.id] = entry


def _decode(record: LogRecord) -> RegisteredSchema:
    value = json.loads(record.value)
    spec = check_schema(value["dataset"], value["schema"])
    return RegisteredSchema(
        record.offset, value["group"], value["dataset"], value["version"], value["schema"], spec
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def open_registry(settings: CommonSettings) -> SchemaRegistry:
    """The registry stored in the settings' schemas topic (created on first use)."""
    log = SchemaLog(
        settings.kafka_config(), settings.schemas_topic, settings.kafka_replication_factor
    )
    return SchemaRegistry(log)
