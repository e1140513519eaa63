"""The sources of a dataset group: existing topics the connector reads in their own shape,
each with its mapping, kept in a compacted Kafka topic like filters (docs/sources.md).

A source is one record of `STREAMREC_SOURCES_TOPIC`, keyed `<group>/<name>`, its value the
topic, the format, the mapping as written, the Avro schema it was checked against (if any)
and a version that each update increases; a tombstone on delete. The mapping is parsed and
checked before it is written, so a malformed one never reaches the topic.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from connector.exceptions import SourceError
from connector.kafka_log import CompactedLog, settings_log
from connector.settings import CommonSettings
from connector.sources.check import check_against
from connector.sources.mapping import SourceMapping, parse_mapping
from connector.topic_view import GroupEntries

FORMATS = ("json", "avro", "debezium")
_REREAD_INTERVAL = 5.0
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}")


@dataclass(frozen=True)
class Source:
    """A stored source: where its records are, how they read, how they map."""

    name: str
    topic: str
    format: str
    mapping: SourceMapping
    document: dict[str, Any]  # the mapping as written
    schema: dict[str, Any] | None  # the Avro schema the mapping was checked against
    version: int
    created: float

    def summary(self) -> dict[str, Any]:
        """What `sources list` and `sources get` show."""
        return {
            "name": self.name,
            "topic": self.topic,
            "format": self.format,
            "target": self.mapping.target,
            "version": self.version,
            "mapping": self.document,
        }


def checked_source(
    name: str,
    topic: str,
    fmt: str,
    document: Any,
    schema: dict[str, Any] | None,
    version: int = 1,
) -> Source:
    """A source whose name, format and mapping are valid; SourceError or MappingError
    saying what is not."""
    if not _NAME.fullmatch(name):
        raise SourceError(
            f"source name {name!r} must be 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if fmt not in FORMATS:
        raise SourceError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "avro" and schema is None:
        raise SourceError("an avro source needs the Avro schema of its records (--schema FILE)")
    mapping = parse_mapping(document)
    if fmt == "debezium" and mapping.target == "events":
        raise SourceError("a debezium source maps a table's rows to items or users, not events")
    if schema is not None:
        check_against(mapping, schema)
    return Source(name, topic, fmt, mapping, document, schema, version, time.time())


class SourceStore(GroupEntries[Source]):
    """Create, update, list, delete and look up the sources of one dataset group."""

    def __init__(self, log: CompactedLog, group: str) -> None:
        super().__init__(log, group, _REREAD_INTERVAL)

    def _read(self, name: str, value: bytes) -> Source:
        stored = json.loads(value)
        return checked_source(
            name,
            stored["topic"],
            stored["format"],
            stored["mapping"],
            stored.get("schema"),
            stored["version"],
        )

    def create(
        self, name: str, topic: str, fmt: str, document: Any, schema: dict[str, Any] | None
    ) -> Source:
        """Store a new source; refused if malformed or if the name is taken."""
        source = checked_source(name, topic, fmt, document, schema)
        with self._exclusive() as writer:
            if name in self._by_name:
                raise SourceError(f"source {name!r} already exists; `sources update` changes it")
            writer.append(self._key(name), _encoded(source))
        self._by_name[name] = source
        return source

    def update(self, name: str, document: Any, schema: dict[str, Any] | None) -> Source:
        """A new version of source `name`'s mapping (and schema)."""
        with self._exclusive() as writer:
            current = self._found(name)
            source = checked_source(
                name,
                current.topic,
                current.format,
                document,
                schema if schema is not None else current.schema,
                current.version + 1,
            )
            writer.append(self._key(name), _encoded(source))
        self._by_name[name] = source
        return source

    def delete(self, name: str) -> Source:
        """Remove source `name`; the connector stops reading it when it next starts."""
        with self._exclusive() as writer:
            found = self._found(name)
            writer.append(self._key(name), None)
        self._by_name.pop(name, None)
        return found

    def list(self) -> list[Source]:
        """Every source of the group, by name."""
        self.reread()
        return sorted(self._by_name.values(), key=lambda source: source.name)

    def get(self, name: str) -> Source:
        self.reread()
        return self._found(name)

    def _found(self, name: str) -> Source:
        if name not in self._by_name:
            raise SourceError(f"source {name!r} does not exist in dataset group {self._group!r}")
        return self._by_name[name]


def _encoded(source: Source) -> bytes:
    value = {
        "topic": source.topic,
        "format": source.format,
        "mapping": source.document,
        "schema": source.schema,
        "version": source.version,
        "created": source.created,
    }
    return json.dumps(value, sort_keys=True).encode()


def open_sources(settings: CommonSettings) -> SourceStore:
    """The sources of the settings' dataset group, stored in the sources topic."""
    return SourceStore(
        settings_log(settings, settings.sources_topic, "streamrec-sources"),
        settings.dataset_group,
    )
