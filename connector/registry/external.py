"""The dataset schemas and producers' writer schemas kept in a Confluent-compatible Schema
Registry, when STREAMREC_SCHEMA_REGISTRY_URL names one (docs/producing.md).

Each dataset schema is a subject `<group>-<dataset>-value` (subjects.py); streamrec checks
Personalize's rules and the compatibility of versions before registering, as it does for its
own registry, and the registry may refuse on its own compatibility setting too. Records are
read with the writer schema their id names, resolved into the dataset's: any id that is not
a dataset version is taken as a writer of the group's PutEvents records, whatever subject
the producer registered it under. The client (confluent-kafka's SchemaRegistryClient) caches
schemas by id; the latest version of each dataset is re-read in the background every few
seconds, so the ingest path never waits on the registry once it has read a version.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.exceptions import (
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaRegistryUnavailableError,
    SchemaRuleError,
)
from connector.registry import subjects
from connector.registry.compatibility import check_compatible, check_readable
from connector.registry.schema import (
    ENVELOPE,
    Readers,
    RegisteredSchema,
    checked_schema,
    parsed_schema,
)
from connector.settings import CommonSettings
from connector.topic_view import Rereader

try:  # the HTTP library the registry client uses: httpx's successor when installed
    import httpx2 as httpx
except ImportError:
    import httpx  # type: ignore[no-redef]

_LATEST_INTERVAL = 5.0  # seconds between background re-reads of the latest versions
_NOT_FOUND = (40401, 40402, 40403)
Answer = TypeVar("Answer")


class ExternalSchemaRegistry:
    """schema.SchemaRegistry over a Confluent-compatible Schema Registry."""

    def __init__(
        self, settings: CommonSettings, client: SchemaRegistryClient | None = None
    ) -> None:
        self._client = client or SchemaRegistryClient(settings.schema_registry_config())
        self._group = settings.dataset_group
        self._latest: dict[tuple[str, str], RegisteredSchema] = {}
        self._by_id: dict[int, RegisteredSchema] = {}
        self._readers = Readers()
        self._refresh = Rereader(self._read_latest, _LATEST_INTERVAL)

    def register(
        self, group: str, dataset: str, schema: dict[str, Any], subject: str | None = None
    ) -> RegisteredSchema:
        """A dataset version (rules and compatibility checked here first) or, with
        `subject`, a writer schema readable as the dataset's current one."""
        if subject is not None:
            check_readable(schema, self.get(group, dataset))
            return self._register(subject, group, dataset, schema, writer=True)
        spec, _ = checked_schema(dataset, schema)
        previous = self._latest_or_none(group, dataset)
        if previous is not None and previous.spec is not None and spec is not None:
            check_compatible(previous.spec, spec, previous.version)
        name = subjects.dataset_subject(group, dataset)
        registered = self._register(name, group, dataset, schema, writer=False)
        self._latest[(group, dataset)] = registered
        return registered

    def _register(
        self, subject: str, group: str, dataset: str, schema: dict[str, Any], writer: bool
    ) -> RegisteredSchema:
        candidate = Schema(json.dumps(schema), "AVRO")
        self._call(lambda: self._client.register_schema(subject, candidate))
        found = self._call(lambda: self._client.lookup_schema(subject, candidate))
        kept = subject if writer else None
        return self._entry(_id_of(found), group, dataset, found.version or 1, schema, kept)

    def get(self, group: str, dataset: str, version: int | None = None) -> RegisteredSchema:
        """A version of a dataset's schema; the latest when `version` is None."""
        name = subjects.dataset_subject(group, dataset)
        try:
            if version is None:
                found = self._call(lambda: self._client.get_latest_version(name))
            else:
                found = self._call(lambda: self._client.get_version(name, version))
        except SchemaNotFoundError as exc:
            raise SchemaNotFoundError(
                f"no {dataset} schema{'' if version is None else f' version {version}'} is "
                f"registered in dataset group {group!r} (subject {name} of the Schema Registry)"
            ) from exc
        schema = _schema_of(found)
        entry = self._entry(_id_of(found), group, dataset, found.version or 1, schema, None)
        if version is None:
            self._latest[(group, dataset)] = entry
        return entry

    def current(self, group: str, dataset: str) -> RegisteredSchema:
        """The latest version, for hot paths: re-read in the background every few seconds."""
        if (group, dataset) not in self._latest:
            return self.get(group, dataset)
        self._refresh.in_background_if_stale()
        return self._latest[(group, dataset)]

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema `schema_id` names: a dataset version when one of its subjects is a
        dataset subject, else a writer schema of this group's PutEvents records."""
        if schema_id not in self._by_id:
            schema = self._call(lambda: self._client.get_schema(schema_id))
            versions = self._call(lambda: self._client.get_schema_versions(schema_id), missing=[])
            self._by_id[schema_id] = self._identified(
                schema_id, _text_schema(schema.schema_str), versions
            )
        return self._by_id[schema_id]

    def writers(self, group: str, dataset: str, subject: str) -> list[RegisteredSchema]:
        """The writer schemas registered under `subject`, by version."""
        versions: list[int] = self._call(partial(self._client.get_versions, subject), missing=[])
        found = []
        for version in versions:
            registered = self._call(partial(self._client.get_version, subject, version))
            schema = _schema_of(registered)
            found.append(self._entry(_id_of(registered), group, dataset, version, schema, subject))
        return found

    def reader_for(self, writer: RegisteredSchema, reader: RegisteredSchema) -> dict[str, Any]:
        """The parsed schema `writer`'s records are read as to get `reader`'s shape."""
        return self._readers.reader_for(writer, reader)

    def list(self, group: str) -> builtins.list[RegisteredSchema]:
        """Every version of every dataset of `group`, by dataset then version."""
        found: builtins.list[RegisteredSchema] = []
        for dataset in sorted(subjects.DATASETS):
            name = subjects.dataset_subject(group, dataset)
            versions: builtins.list[int] = self._call(
                partial(self._client.get_versions, name), missing=[]
            )
            found.extend(self.get(group, dataset, version) for version in versions)
        return found

    def _identified(
        self, schema_id: int, schema: dict[str, Any], versions: builtins.list[Any]
    ) -> RegisteredSchema:
        for found in versions:
            for dataset in subjects.DATASETS:
                suffix = f"-{dataset}{subjects.SUFFIX}"
                if found.subject.endswith(suffix):
                    group = found.subject[: -len(suffix)]
                    return self._entry(schema_id, group, dataset, found.version, schema, None)
        subject = versions[0].subject if versions else f"id {schema_id}"
        version = versions[0].version if versions else 1
        return self._entry(schema_id, self._group, ENVELOPE, version, schema, subject)

    def _entry(
        self,
        schema_id: int,
        group: str,
        dataset: str,
        version: int,
        schema: dict[str, Any],
        subject: str | None,
    ) -> RegisteredSchema:
        if subject is None:
            spec, parsed = checked_schema(dataset, schema)
        else:
            spec, parsed = None, parsed_schema(schema)
        entry = RegisteredSchema(schema_id, group, dataset, version, schema, parsed, spec, subject)
        self._by_id.setdefault(schema_id, entry)
        return entry

    def _latest_or_none(self, group: str, dataset: str) -> RegisteredSchema | None:
        try:
            return self.get(group, dataset)
        except SchemaNotFoundError:
            return None

    def _read_latest(self) -> None:
        for group, dataset in list(self._latest):
            self.get(group, dataset)

    def _call(self, request: Callable[[], Answer], missing: Any = None) -> Answer:
        """The client's answer; its refusals as streamrec's errors (`missing`, if given,
        for a subject or version the registry does not have)."""
        try:
            return request()
        except SchemaRegistryError as exc:
            if exc.error_code in _NOT_FOUND:
                if missing is not None:
                    return missing  # type: ignore[no-any-return]
                raise SchemaNotFoundError(exc.error_message) from exc
            if exc.http_status_code == 409:
                raise IncompatibleSchemaError(
                    f"the Schema Registry refused the schema: {exc.error_message}"
                ) from exc
            if exc.http_status_code == 422:
                raise SchemaRuleError(
                    f"the Schema Registry refused the schema: {exc.error_message}"
                ) from exc
            raise SchemaRegistryUnavailableError(
                f"the Schema Registry answered {exc.http_status_code}: {exc.error_message}"
            ) from exc
        except httpx.HTTPError as exc:
            raise SchemaRegistryUnavailableError(
                f"the Schema Registry is unreachable: {exc}"
            ) from exc


def _schema_of(registered: Any) -> dict[str, Any]:
    """The schema of a client's RegisteredSchema, as JSON."""
    return _text_schema(registered.schema.schema_str)


def _text_schema(text: str | None) -> dict[str, Any]:
    schema = json.loads(text or "null")
    if not isinstance(schema, dict):
        raise SchemaRuleError("the Schema Registry holds a schema that is not an Avro record")
    return schema


def _id_of(registered: Any) -> int:
    if registered.schema_id is None:
        raise SchemaRegistryUnavailableError("the Schema Registry answered without a schema id")
    return int(registered.schema_id)
