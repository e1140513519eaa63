"""What every schema registry holds and answers, whichever stores it: a registered schema,
the operations the connector, API, worker and commands use, and how a schema is checked and
parsed before it is stored.

Two stores implement `SchemaRegistry`: streamrec's own, in a compacted Kafka topic
(registry.py), and a Confluent-compatible Schema Registry when
STREAMREC_SCHEMA_REGISTRY_URL is set (external.py); `registry.open_registry` picks one.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any, Protocol, cast

import fastavro
from fastavro.schema import SchemaParseException

from connector.exceptions import SchemaRuleError
from connector.registry import resolution
from connector.registry.rules import DatasetSchema, check_schema

ENVELOPE = "putevents"  # the PutEvents record producers encode in the Confluent wire format


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a dataset schema of one dataset group, or one writer schema."""

    id: int
    group: str
    dataset: str
    version: int
    schema: dict[str, Any]
    parsed: dict[str, Any]
    spec: DatasetSchema | None  # None for the envelope and writer schemas: no dataset rules
    subject: str | None = None  # a writer schema's subject; None for a dataset version

    def summary(self) -> dict[str, Any]:
        """What `schemas list` and `schemas get` show about this version."""
        return {
            "group": self.group,
            "dataset": self.dataset,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }


class SchemaRegistry(Protocol):
    """The registry operations streamrec uses (registry.py documents their semantics)."""

    def register(
        self, group: str, dataset: str, schema: dict[str, Any], subject: str | None = None
    ) -> RegisteredSchema: ...

    def list(self, group: str) -> list[RegisteredSchema]: ...

    def get(self, group: str, dataset: str, version: int | None = None) -> RegisteredSchema: ...

    def current(self, group: str, dataset: str) -> RegisteredSchema: ...

    def by_id(self, schema_id: int) -> RegisteredSchema: ...

    def writers(
        self, group: str, dataset: str, subject: str
    ) -> builtins.list[RegisteredSchema]: ...

    def reader_for(self, writer: RegisteredSchema, reader: RegisteredSchema) -> dict[str, Any]: ...


class Readers:
    """The parsed reader schemas records of a writer schema are read as (resolution.py),
    built once per (writer, reader) pair."""

    def __init__(self) -> None:
        self._built: dict[tuple[int, int], dict[str, Any]] = {}

    def reader_for(self, writer: RegisteredSchema, reader: RegisteredSchema) -> dict[str, Any]:
        """`reader` with the aliases `writer` declares, parsed."""
        key = (writer.id, reader.id)
        if key not in self._built:
            self._built[key] = parsed_schema(resolution.reader_for(writer.schema, reader.schema))
        return self._built[key]


def checked_schema(
    dataset: str, schema: dict[str, Any]
) -> tuple[DatasetSchema | None, dict[str, Any]]:
    """Dataset schemas pass Personalize's rules; the envelope only has to be valid Avro."""
    if dataset != ENVELOPE:
        spec = check_schema(dataset, schema)
        return spec, spec.parsed
    return None, parsed_schema(schema)


def parsed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """fastavro's parsed form of `schema`; SchemaRuleError if it is not valid Avro."""
    try:
        return cast(dict[str, Any], fastavro.parse_schema(schema))
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaRuleError(f"not a valid Avro schema: {exc}") from exc


def canonical(value: Any) -> str:
    """`value` as JSON with sorted keys and no spaces: equal schemas, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
