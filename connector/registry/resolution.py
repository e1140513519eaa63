"""The reader schema a producer's writer schema is resolved against.

Avro schema resolution matches records by unqualified name and fields by name, and lets
only the reader declare aliases. A producer cannot edit streamrec's dataset schemas, so its
writer schema may declare them instead: a writer record or field whose `aliases` name a
record or field of the reader is matched to it, exactly as if the reader had declared the
writer's name as an alias. `reader_for` returns the reader with those aliases added; both
the compatibility check at registration and the decoding of each record use it.
"""

from __future__ import annotations

import copy
from typing import Any

Schema = Any  # a JSON Avro schema node: a dict, a list (union) or a type name


def reader_for(writer: Schema, reader: Schema) -> Schema:
    """A copy of `reader` that also answers to the names `writer` gives as its aliases."""
    adapted = copy.deepcopy(reader)
    _adapt(writer, adapted, "", _named(writer, ""))
    return adapted


def _adapt(writer: Schema, reader: Schema, namespace: str, named: dict[str, Schema]) -> None:
    writer = named.get(_full_name(writer, namespace), writer) if isinstance(writer, str) else writer
    if isinstance(reader, list):
        for branch in reader:
            for candidate in writer if isinstance(writer, list) else [writer]:
                if _same_kind(candidate, branch, namespace, named):
                    _adapt(candidate, branch, namespace, named)
        return
    if not isinstance(reader, dict) or not isinstance(writer, dict):
        return
    kind = reader.get("type")
    if kind == "record" and writer.get("type") == "record":
        _adapt_record(writer, reader, namespace, named)
    elif kind == "array" and writer.get("type") == "array":
        _adapt(writer["items"], reader["items"], namespace, named)
    elif kind == "map" and writer.get("type") == "map":
        _adapt(writer["values"], reader["values"], namespace, named)


def _adapt_record(
    writer: dict[str, Any], reader: dict[str, Any], namespace: str, named: dict[str, Schema]
) -> None:
    writer_name = _full_name(writer["name"], writer.get("namespace", namespace))
    if _short(writer_name) != _short(reader["name"]) and _short(reader["name"]) in _shorts(writer):
        reader.setdefault("aliases", []).append(writer_name)
    inner = writer_name.rpartition(".")[0]
    for field in reader.get("fields", []):
        match = _writer_field(writer, field["name"])
        if match is None:
            continue
        if match["name"] != field["name"]:
            field.setdefault("aliases", []).append(match["name"])
        _adapt(match["type"], field["type"], inner, named)


def _writer_field(writer: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The writer's field named `name`, else the one that gives it as an alias."""
    fields = writer.get("fields", [])
    same = [field for field in fields if field.get("name") == name]
    aliased = [field for field in fields if name in field.get("aliases", [])]
    found = same or aliased
    return found[0] if found else None


def _same_kind(writer: Schema, reader: Schema, namespace: str, named: dict[str, Schema]) -> bool:
    """Whether a writer branch and a reader union branch are the same named record, or the
    same array or map, so their inner names can be matched."""
    writer = named.get(_full_name(writer, namespace), writer) if isinstance(writer, str) else writer
    if not isinstance(writer, dict) or not isinstance(reader, dict):
        return False
    if writer.get("type") != reader.get("type"):
        return False
    if reader.get("type") != "record":
        return reader.get("type") in ("array", "map")
    short = _short(reader["name"])
    return _short(writer["name"]) == short or short in _shorts(writer)


def _named(schema: Schema, namespace: str) -> dict[str, Schema]:
    """Every named record of `schema` by full name, so references by name can be followed."""
    found: dict[str, Schema] = {}
    if isinstance(schema, list):
        for branch in schema:
            found.update(_named(branch, namespace))
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            full = _full_name(schema["name"], schema.get("namespace", namespace))
            found[full] = schema
            for field in schema.get("fields", []):
                found.update(_named(field["type"], full.rpartition(".")[0]))
        elif kind == "array":
            found.update(_named(schema["items"], namespace))
        elif kind == "map":
            found.update(_named(schema["values"], namespace))
    return found


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _shorts(writer: dict[str, Any]) -> set[str]:
    return {_short(alias) for alias in writer.get("aliases", [])}
