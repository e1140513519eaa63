"""Whether a new version of a dataset schema may replace the current one, and whether a
producer's writer schema can be read as a dataset's.

A dataset keeps every record ever accepted, and training reads all of them with the newest
schema, so a new version must be able to hold every record the previous version accepted:
no non-nullable field removed, no field added without null, no type that holds fewer values.
A writer schema is checked with Avro's own schema-resolution rules (the `avro` library's
reader/writer checker), which is how the connector then reads its records.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.errors import AvroException

from connector.exceptions import IncompatibleSchemaError, SchemaRuleError
from connector.registry.resolution import reader_for
from connector.registry.rules import DatasetSchema, FieldSpec

if TYPE_CHECKING:
    from connector.registry.schema import RegisteredSchema

# Avro's type promotions: a value of the key type can be read as any type in its set.
_WIDER = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
}


def check_compatible(previous: DatasetSchema, candidate: DatasetSchema, version: int) -> None:
    """Raise IncompatibleSchemaError with the reason if `candidate` cannot replace `previous`.

    `version` is the previous version's number; messages name it so the user knows which data
    would no longer fit.
    """
    new_fields = {spec.name: spec for spec in candidate.fields}
    old_names = {spec.name for spec in previous.fields}
    for old in previous.fields:
        _check_kept_field(old, new_fields.get(old.name), version)
    for spec in candidate.fields:
        if spec.name not in old_names and not spec.nullable:
            raise IncompatibleSchemaError(
                f"new field {spec.name} must be nullable: records of version {version} "
                "have no value for it"
            )


def _check_kept_field(old: FieldSpec, new: FieldSpec | None, version: int) -> None:
    if new is None:
        if not old.nullable:
            raise IncompatibleSchemaError(
                f"required field {old.name} was removed (every record of version "
                f"{version} has it); make it nullable first or keep it"
            )
        return
    if new.type != old.type:
        verb = "narrowed" if old.type in _WIDER.get(new.type, set()) else "changed"
        if new.type not in _WIDER.get(old.type, set()):
            raise IncompatibleSchemaError(
                f"field {old.name}: type {verb} from {old.type} to {new.type}, which cannot "
                f"hold every value of version {version}"
            )
    if old.nullable and not new.nullable:
        raise IncompatibleSchemaError(
            f"field {old.name} is no longer nullable, but records of version {version} "
            "may hold null"
        )


def check_readable(writer: dict[str, Any], reader: RegisteredSchema) -> None:
    """Raise IncompatibleSchemaError naming what does not resolve if records written with
    `writer` cannot be read as `reader` (Avro schema resolution: fields matched by name or
    alias, extra writer fields skipped, missing ones filled from the reader's defaults,
    numeric promotions), with the aliases the writer declares (resolution.py)."""
    try:
        parsed = avro.schema.parse(json.dumps(writer))
    except (AvroException, ValueError, TypeError, KeyError) as exc:
        raise SchemaRuleError(f"not a valid Avro schema: {exc}") from exc
    target = avro.schema.parse(json.dumps(reader_for(writer, reader.schema)))
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(target, parsed)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return
    kinds = sorted({kind.value.replace("_", " ") for kind in result.incompatibilities or []})
    where = ", ".join(sorted(result.locations or []))
    reasons = "; ".join(kinds + sorted(result.messages or [])) + f" (at {where})"
    raise IncompatibleSchemaError(
        f"records written with this schema cannot be read as the {reader.dataset} schema "
        f"version {reader.version} of dataset group {reader.group!r}: {reasons}"
    )
