"""Personalize's dataset-schema rules, checked once when a schema is registered.

The rules are pure functions of the schema so they are unit-tested without a broker. Each
violation raises `SchemaRuleError` with a message that names the field and the fix; the
checks run in a fixed order so one bad schema always gets the same message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, cast, get_args

import fastavro
from fastavro.schema import SchemaParseException

from connector.exceptions import SchemaRuleError

DatasetType = Literal["interactions", "users", "items"]
DATASET_TYPES: tuple[DatasetType, ...] = get_args(DatasetType)

PRIMITIVES = ("string", "int", "long", "float", "double", "boolean")
MAX_METADATA_FIELDS: dict[DatasetType, int] = {"interactions": 5, "users": 25, "items": 100}
# Optional Interactions fields plus distinct event types may not exceed this (Personalize quota).
MAX_OPTIONAL_FIELDS_AND_EVENT_TYPES = 10
_FIELD_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class ReservedField:
    """A field name Personalize gives a meaning to, with the types it may have."""

    types: tuple[str, ...]
    required: bool = False


RESERVED: dict[DatasetType, dict[str, ReservedField]] = {
    "interactions": {
        "USER_ID": ReservedField(("string",), required=True),
        "ITEM_ID": ReservedField(("string",), required=True),
        "TIMESTAMP": ReservedField(("long",), required=True),
        "EVENT_TYPE": ReservedField(("string",)),
        "EVENT_VALUE": ReservedField(("float", "double")),
        "IMPRESSION": ReservedField(("string",)),
        "RECOMMENDATION_ID": ReservedField(("string",)),
        "EVENT_ATTRIBUTION_SOURCE": ReservedField(("string",)),
    },
    "users": {"USER_ID": ReservedField(("string",), required=True)},
    "items": {
        "ITEM_ID": ReservedField(("string",), required=True),
        "CREATION_TIMESTAMP": ReservedField(("long",)),
    },
}


@dataclass(frozen=True)
class FieldSpec:
    """One field of a dataset schema, reduced to what the rules and the ingest path need."""

    name: str
    type: str
    nullable: bool
    categorical: bool = False
    textual: bool = False


@dataclass(frozen=True)
class DatasetSchema:
    """A dataset schema that passed every rule, parsed once by fastavro."""

    dataset: DatasetType
    fields: tuple[FieldSpec, ...]
    parsed: dict[str, Any]

    def field(self, name: str) -> FieldSpec | None:
        """The field called `name`, or None."""
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, FieldSpec]:
        # Looked up for every property of every event on the ingest path: a dict, built once.
        return {spec.name: spec for spec in self.fields}

    @cached_property
    def metadata_fields(self) -> tuple[FieldSpec, ...]:
        """Fields that are not reserved by Personalize: the user's own metadata columns."""
        return tuple(spec for spec in self.fields if spec.name not in RESERVED[self.dataset])

    @property
    def event_type_budget(self) -> int:
        """How many distinct event types ingest may accept (Interactions' 10-field quota)."""
        counted = [spec for spec in self.fields if spec.name in ("EVENT_TYPE", "EVENT_VALUE")]
        return MAX_OPTIONAL_FIELDS_AND_EVENT_TYPES - len(counted) - len(self.metadata_fields)


def check_schema(dataset: str, schema: Any) -> DatasetSchema:
    """Check `schema` (a decoded JSON Avro schema) against Personalize's rules for `dataset`."""
    kind = _dataset_type(dataset)
    _check_record_shape(schema)
    fields = tuple(_field_spec(raw) for raw in schema["fields"])
    _check_unique_names(fields)
    for spec in fields:
        _check_name(spec)
        _check_reserved(kind, spec)
        _check_flags(kind, spec)
    _check_required_present(kind, fields)
    result = DatasetSchema(kind, fields, _parse(schema))
    _check_metadata_count(result)
    return result


def _dataset_type(dataset: str) -> DatasetType:
    if dataset not in DATASET_TYPES:
        raise SchemaRuleError(
            f"unknown dataset {dataset!r}: expected one of {', '.join(DATASET_TYPES)}"
        )
    return dataset


def _check_record_shape(schema: Any) -> None:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaRuleError('schema must be an Avro record: {"type": "record", ...}')
    if not isinstance(schema.get("fields"), list) or not schema["fields"]:
        raise SchemaRuleError("schema must have a non-empty 'fields' list")
    if not all(
        isinstance(raw, dict) and isinstance(raw.get("name"), str) for raw in schema["fields"]
    ):
        raise SchemaRuleError("every entry of 'fields' must be an object with a 'name'")


def _field_spec(raw: dict[str, Any]) -> FieldSpec:
    """Reduce an Avro field to (type, nullable); only primitives, optionally with null, pass."""
    name, declared = raw["name"], raw.get("type")
    members = declared if isinstance(declared, list) else [declared]
    non_null = [member for member in members if member != "null"]
    if len(non_null) != 1 or non_null[0] not in PRIMITIVES or len(members) > 2:
        raise SchemaRuleError(
            f"field {name}: type {declared!r} is not allowed; use one of "
            f"{', '.join(PRIMITIVES)}, or a union of one of them with null"
        )
    return FieldSpec(
        name=name,
        type=non_null[0],
        nullable=len(members) == 2,
        categorical=raw.get("categorical") is True,
        textual=raw.get("textual") is True,
    )


def _check_unique_names(fields: tuple[FieldSpec, ...]) -> None:
    seen: set[str] = set()
    for spec in fields:
        if spec.name in seen:
            raise SchemaRuleError(f"field {spec.name} is declared twice")
        seen.add(spec.name)


def _check_name(spec: FieldSpec) -> None:
    if not _FIELD_NAME.match(spec.name):
        raise SchemaRuleError(
            f"field {spec.name}: names must be UPPER_SNAKE_CASE (A-Z, 0-9, _), so that "
            "camelCase property keys such as numRatings map to them (NUM_RATINGS)"
        )


def _check_reserved(kind: DatasetType, spec: FieldSpec) -> None:
    reserved = RESERVED[kind].get(spec.name)
    if reserved is None:
        owner = next((other for other in DATASET_TYPES if spec.name in RESERVED[other]), None)
        if owner is not None:
            raise SchemaRuleError(
                f"field {spec.name} is reserved for the {owner.capitalize()} dataset"
            )
        return
    if spec.type not in reserved.types:
        raise SchemaRuleError(
            f"field {spec.name} must be of type {' or '.join(reserved.types)}, not {spec.type}"
        )
    if reserved.required and spec.nullable:
        raise SchemaRuleError(f"field {spec.name} is required and cannot be nullable")


def _check_flags(kind: DatasetType, spec: FieldSpec) -> None:
    if spec.categorical and spec.type != "string":
        raise SchemaRuleError(
            f"field {spec.name}: categorical is allowed only on string fields, not {spec.type}"
        )
    if spec.textual and (spec.type != "string" or kind != "items"):
        raise SchemaRuleError(
            f"field {spec.name}: textual is allowed only on string fields of the Items dataset"
        )


def _check_required_present(kind: DatasetType, fields: tuple[FieldSpec, ...]) -> None:
    names = {spec.name for spec in fields}
    for name, reserved in RESERVED[kind].items():
        if reserved.required and name not in names:
            raise SchemaRuleError(
                f"{kind.capitalize()} schema must have a {name} field of type "
                f"{' or '.join(reserved.types)}"
            )
    if kind != "interactions" and len(fields) < 2:
        raise SchemaRuleError(
            f"{kind.capitalize()} schema needs at least one metadata field besides its id"
        )


def _check_metadata_count(schema: DatasetSchema) -> None:
    limit, found = MAX_METADATA_FIELDS[schema.dataset], schema.metadata_fields
    if len(found) > limit:
        raise SchemaRuleError(
            f"{schema.dataset.capitalize()} allows at most {limit} metadata fields, "
            f"got {len(found)}: {', '.join(spec.name for spec in found)}"
        )


def _parse(schema: dict[str, Any]) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], fastavro.parse_schema(schema))
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaRuleError(f"not a valid Avro schema: {exc}") from exc
