"""The part of Confluent's Schema Registry REST API that serializers use, answered from
streamrec's own registry on the API's port, so producer code written for a Schema Registry
(confluent-kafka's `AvroSerializer`, Java's `KafkaAvroSerializer`) publishes to streamrec
unchanged: point its `url` at the API (docs/producing.md).

Subjects are those of the API's dataset group (`connector.registry.subjects`), its Avro
sources' topics included (a writer schema there must hold every path the source's mapping
reads, with types it can convert: `connector/sources/check.py`); schemas are
Avro only, without references. Errors have the Schema Registry's shape, `{"error_code",
"message"}`, with its codes (40401 subject, 40402 version, 40403 schema not found, 409
incompatible, 42201 invalid schema). Registry reads and writes talk to Kafka, so they run in
a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from connector.exceptions import (
    IncompatibleSchemaError,
    MappingError,
    SchemaNotFoundError,
    SchemaRuleError,
    TransientError,
)
from connector.registry import subjects
from connector.registry.compatibility import check_compatible, check_readable
from connector.registry.registry import open_registry
from connector.registry.rules import check_schema
from connector.registry.schema import RegisteredSchema, SchemaRegistry
from connector.settings import CommonSettings
from connector.sources.check import check_against
from connector.sources.store import Source, SourceStore, open_sources

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_TYPES = frozenset({MEDIA_TYPE, "application/vnd.schemaregistry+json", "application/json"})
REGISTRY = web.AppKey("schema_registry", object)
AVRO_FORMATS = ("avro", "debezium")  # a debezium source's records may be Avro too
COMPATIBILITY_LEVEL = "BACKWARD"  # what a writer schema is checked for: readable as the dataset's


class RegistryError(Exception):
    """A request the Schema Registry API refuses: its HTTP status and error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _Registry:
    """The API group's view of streamrec's registry, opened on first use so an API whose
    clients never register schemas needs no schemas topic reader."""

    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._opened: SchemaRegistry | None = None
        self._sources: SourceStore | None = None
        self.group = settings.dataset_group
        self.events_topic = settings.topics.events

    @property
    def store(self) -> SchemaRegistry:
        if self._opened is None:
            self._opened = open_registry(self._settings)
        return self._opened

    def avro_sources(self) -> dict[str, Source]:
        """The group's Avro sources by topic, as they stand now."""
        if self._sources is None:
            self._sources = open_sources(self._settings)
        return {s.topic: s for s in self._sources.list() if s.format in AVRO_FORMATS}

    def subject(self, name: str) -> subjects.Subject:
        """The subject `name` names (blocking: it may read the sources topic)."""
        fixed = {f"{self.events_topic}{subjects.SUFFIX}"}
        fixed |= {subjects.dataset_subject(self.group, d) for d in subjects.DATASETS}
        topics = () if name in fixed else self.avro_sources().keys()
        try:
            return subjects.resolve(name, self.group, self.events_topic, topics)
        except SchemaNotFoundError as exc:
            raise RegistryError(404, 40401, str(exc)) from exc

    def check_source(self, subject: subjects.Subject, schema: dict[str, Any]) -> None:
        """A source topic's writer schema must hold what the source's mapping reads."""
        topic = subject.name[: -len(subjects.SUFFIX)]
        source = self.avro_sources().get(topic)
        if source is None:  # deleted since the subject was resolved
            raise RegistryError(404, 40401, f"no Avro source of {self.group!r} reads {topic}")
        try:
            check_against(source.mapping, schema, "after" if source.format == "debezium" else "")
        except MappingError as exc:
            raise RegistryError(
                422, 42201, f"the schema does not suit source {source.name!r}'s mapping: {exc}"
            ) from exc

    def versions(self, subject: subjects.Subject) -> list[RegisteredSchema]:
        if subject.writer:
            return self.store.writers(subject.group, subject.dataset, subject.name)
        return [e for e in self.store.list(subject.group) if e.dataset == subject.dataset]

    def version(self, subject: subjects.Subject, version: str) -> RegisteredSchema:
        found = self.versions(subject)
        if not found:
            raise RegistryError(404, 40401, f"subject {subject.name!r} has no versions")
        if version in ("latest", "-1"):
            return found[-1]
        if not version.isdigit() or not 1 <= int(version) <= len(found):
            raise RegistryError(
                404, 40402, f"subject {subject.name!r} has versions 1-{len(found)}, not {version}"
            )
        return found[int(version) - 1]

    def register(self, subject: subjects.Subject, schema: dict[str, Any]) -> RegisteredSchema:
        if subject.dataset == subjects.SOURCE:
            self.check_source(subject, schema)
        writer = subject.name if subject.writer else None
        return self.store.register(subject.group, subject.dataset, schema, writer)

    def by_id(self, schema_id: int) -> RegisteredSchema:
        try:
            entry = self.store.by_id(schema_id)
        except SchemaNotFoundError as exc:
            raise RegistryError(404, 40403, f"schema {schema_id} not found") from exc
        if entry.group != self.group:
            raise RegistryError(404, 40403, f"schema {schema_id} not found")
        return entry

    def problems(
        self, subject: subjects.Subject, schema: dict[str, Any], version: str
    ) -> list[str]:
        """Why `schema` could not be registered under `subject` against `version`: none
        when compatible."""
        try:
            if subject.dataset == subjects.SOURCE:
                self.check_source(subject, schema)
            elif subject.writer:
                check_readable(schema, self.store.get(subject.group, subject.dataset))
            else:
                candidate = check_schema(subject.dataset, schema)
                against = self.version(subject, version)
                if against.spec is not None:
                    check_compatible(against.spec, candidate, against.version)
        except SchemaRuleError as exc:
            return [str(exc)]
        except RegistryError as exc:
            if exc.code != 42201:
                raise
            return [str(exc)]
        return []


def register(app: web.Application, settings: CommonSettings) -> None:
    """Add the Schema Registry routes for the settings' dataset group to `app`, unless the
    schemas live in an external Schema Registry, which producers then use directly."""
    if settings.schema_registry_url:
        return
    registry = _Registry(settings)
    routes: list[tuple[str, str, Callable[[_Registry, web.Request], Awaitable[Any]]]] = [
        ("GET", "/subjects", _list_subjects),
        ("GET", "/subjects/{subject}/versions", _list_versions),
        ("GET", "/subjects/{subject}/versions/{version}", _get_version),
        ("GET", "/subjects/{subject}/versions/{version}/schema", _get_raw_schema),
        ("POST", "/subjects/{subject}/versions", _register),
        ("POST", "/subjects/{subject}", _lookup),
        ("GET", "/schemas/ids/{id}", _get_by_id),
        ("GET", "/schemas/ids/{id}/versions", _versions_by_id),
        ("GET", "/schemas/ids/{id}/subjects", _subjects_by_id),
        ("GET", "/schemas/types", _types),
        ("POST", "/compatibility/subjects/{subject}/versions/{version}", _compatibility),
        ("GET", "/config", _config),
        ("GET", "/config/{subject}", _config),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _answering(registry, handler))


def _answering(
    registry: _Registry, handler: Callable[[_Registry, web.Request], Awaitable[Any]]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler's document as the registry's JSON, its refusals in the registry's shape."""

    async def answer(request: web.Request) -> web.Response:
        try:
            return _document(await handler(registry, request))
        except RegistryError as exc:
            return _document({"error_code": exc.code, "message": str(exc)}, exc.status)
        except TransientError as exc:
            return _document({"error_code": 50003, "message": f"{exc}; retry"}, 503)

    return answer


async def _list_subjects(registry: _Registry, request: web.Request) -> list[str]:
    def names() -> list[str]:
        found = {subjects.subject_of(entry) for entry in registry.store.list(registry.group)}
        topics = registry.avro_sources().keys()
        for topic in (registry.events_topic, *topics):
            name = f"{topic}{subjects.SUFFIX}"
            writer = subjects.resolve(name, registry.group, registry.events_topic, topics)
            if registry.versions(writer):
                found.add(name)
        return sorted(found)

    return await asyncio.to_thread(names)


async def _list_versions(registry: _Registry, request: web.Request) -> list[int]:
    subject = await _subject(registry, request)
    found = await asyncio.to_thread(registry.versions, subject)
    if not found:
        raise RegistryError(404, 40401, f"subject {subject.name!r} has no versions")
    return [entry.version for entry in found]


async def _get_version(registry: _Registry, request: web.Request) -> dict[str, Any]:
    subject = await _subject(registry, request)
    entry = await asyncio.to_thread(registry.version, subject, request.match_info["version"])
    return _described(entry)


async def _get_raw_schema(registry: _Registry, request: web.Request) -> dict[str, Any]:
    subject = await _subject(registry, request)
    entry = await asyncio.to_thread(registry.version, subject, request.match_info["version"])
    return entry.schema


async def _register(registry: _Registry, request: web.Request) -> dict[str, Any]:
    subject = await _subject(registry, request)
    schema = _schema(await _body(request))
    try:
        entry = await asyncio.to_thread(registry.register, subject, schema)
    except IncompatibleSchemaError as exc:
        raise RegistryError(409, 409, str(exc)) from exc
    except SchemaNotFoundError as exc:  # a writer schema before the dataset has one
        raise RegistryError(404, 40401, str(exc)) from exc
    except SchemaRuleError as exc:
        raise RegistryError(422, 42201, str(exc)) from exc
    return {"id": entry.id, **_described(entry)}


async def _lookup(registry: _Registry, request: web.Request) -> dict[str, Any]:
    subject = await _subject(registry, request)
    wanted = _canonical(_schema(await _body(request)))
    found = await asyncio.to_thread(registry.versions, subject)
    for entry in found:
        if _canonical(entry.schema) == wanted:
            return _described(entry)
    if not found:
        raise RegistryError(404, 40401, f"subject {subject.name!r} has no versions")
    raise RegistryError(404, 40403, f"the schema is not registered under {subject.name!r}")


async def _get_by_id(registry: _Registry, request: web.Request) -> dict[str, Any]:
    entry = await _entry_by_id(registry, request)
    return {"schema": json.dumps(entry.schema)}


async def _versions_by_id(registry: _Registry, request: web.Request) -> list[dict[str, Any]]:
    entry = await _entry_by_id(registry, request)
    return [{"subject": subjects.subject_of(entry), "version": entry.version}]


async def _subjects_by_id(registry: _Registry, request: web.Request) -> list[str]:
    return [subjects.subject_of(await _entry_by_id(registry, request))]


async def _entry_by_id(registry: _Registry, request: web.Request) -> RegisteredSchema:
    text = request.match_info["id"]
    if not text.isdigit():
        raise RegistryError(404, 40403, f"schema {text} not found")
    return await asyncio.to_thread(registry.by_id, int(text))


async def _types(registry: _Registry, request: web.Request) -> list[str]:
    return ["AVRO"]


async def _compatibility(registry: _Registry, request: web.Request) -> dict[str, Any]:
    subject = await _subject(registry, request)
    schema = _schema(await _body(request))
    version = request.match_info["version"]
    problems = await asyncio.to_thread(registry.problems, subject, schema, version)
    answer: dict[str, Any] = {"is_compatible": not problems}
    if request.query.get("verbose", "").lower() == "true":
        answer["messages"] = problems
    return answer


async def _config(registry: _Registry, request: web.Request) -> dict[str, Any]:
    if "subject" in request.match_info:
        await _subject(registry, request)
    return {"compatibilityLevel": COMPATIBILITY_LEVEL}


async def _subject(registry: _Registry, request: web.Request) -> subjects.Subject:
    return await asyncio.to_thread(registry.subject, request.match_info["subject"])


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type not in ACCEPTED_TYPES:
        raise RegistryError(
            415, 415, f"Content-Type must be {MEDIA_TYPE}, got {request.content_type[:80]}"
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise RegistryError(422, 42201, f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RegistryError(422, 42201, "the request body must be a JSON object")
    return body


def _schema(body: dict[str, Any]) -> dict[str, Any]:
    """The Avro schema of a register, lookup or compatibility request."""
    kind = body.get("schemaType", "AVRO")
    if kind != "AVRO":
        raise RegistryError(422, 42201, f"streamrec's registry holds Avro schemas, not {kind}")
    if body.get("references"):
        raise RegistryError(422, 42201, "schema references are not supported")
    text = body.get("schema")
    if not isinstance(text, str):
        raise RegistryError(422, 42201, "the request must carry the schema as a JSON string")
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(422, 42201, f"the schema is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise RegistryError(422, 42201, "streamrec's registry takes record schemas")
    return schema


def _described(entry: RegisteredSchema) -> dict[str, Any]:
    return {
        "subject": subjects.subject_of(entry),
        "version": entry.version,
        "id": entry.id,
        "schema": json.dumps(entry.schema),
    }


def _document(document: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type=MEDIA_TYPE)


def _canonical(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))
