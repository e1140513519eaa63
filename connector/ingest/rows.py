"""From PutEvents / PutItems / PutUsers records to dataset rows, checked against their schema.

Field mapping follows Personalize: the event's user (userId, or the sessionId for anonymous
users) -> USER_ID, itemId -> ITEM_ID, sentAt -> TIMESTAMP, eventType -> EVENT_TYPE,
eventValue -> EVENT_VALUE, impression -> IMPRESSION ('|'-joined), recommendationId ->
RECOMMENDATION_ID, metricAttribution.eventAttributionSource -> EVENT_ATTRIBUTION_SOURCE, and
each camelCase property key to its UPPER_SNAKE field (numRatings -> NUM_RATINGS). Values for
fields the schema does not declare are not stored, as in Personalize.
"""

from __future__ import annotations

import functools
import math
import re
import reprlib
import struct
from typing import Any

import orjson

from connector.exceptions import InvalidEventError
from connector.registry.rules import RESERVED, DatasetSchema

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Fields a record sets itself, never through `properties` (an item's creationTimestamp is a
# property in PutItems, while an event's type, value and so on are fields of the event).
_FILLED_BY_RECORD = {
    "interactions": set(RESERVED["interactions"]),
    "users": {"USER_ID"},
    "items": {"ITEM_ID"},
}


@functools.lru_cache(maxsize=4096)  # a handful of distinct keys, seen on every event
def property_field(key: str) -> str:
    """The schema field a camelCase property key maps to: numRatings -> NUM_RATINGS."""
    return _CAMEL_BOUNDARY.sub("_", key).upper()


def decode_json(raw: bytes) -> dict[str, Any]:
    """Parse a JSON record; anything but a JSON object is an InvalidEventError."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(f"not valid JSON: {_json_error(raw, exc)}") from exc
    if not isinstance(record, dict):
        raise InvalidEventError("a record must be a JSON object")
    return record


def _json_error(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """orjson's reason, except for bytes that are not UTF-8, which it reports as "str is not
    valid UTF-8: surrogates not allowed" whatever the bytes are: say what is wrong instead."""
    if "not valid UTF-8" in str(exc):
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            return f"the bytes are not valid UTF-8 (byte {bad.start} is 0x{raw[bad.start]:02x})"
        return "the text is not valid UTF-8 (it encodes a lone surrogate)"
    return str(exc)


def interaction_row(
    event: Any, user_id: Any, impression: list[str] | None, schema: DatasetSchema
) -> dict[str, Any]:
    """The Interactions row of one event, attributed to `user_id`, with `impression` shown."""
    if not isinstance(event, dict):
        raise InvalidEventError("each entry of eventList must be an object")
    if not event.get("eventType"):
        raise InvalidEventError("eventType is required on every event")
    values = {**_reserved_values(event, user_id, impression), **_properties(event, schema)}
    return _checked_row(values, schema)


def metadata_row(id_value: Any, properties: Any, schema: DatasetSchema) -> dict[str, Any]:
    """The Items or Users row of one PutItems / PutUsers entry."""
    id_field = "ITEM_ID" if schema.dataset == "items" else "USER_ID"
    values = {id_field: id_value, **_properties({"properties": properties}, schema)}
    return _checked_row(values, schema)


def _reserved_values(
    event: dict[str, Any], user_id: Any, impression: list[str] | None
) -> dict[str, Any]:
    attribution = event.get("metricAttribution")
    return {
        "USER_ID": user_id,
        "ITEM_ID": event.get("itemId"),
        "TIMESTAMP": event.get("sentAt"),
        "EVENT_TYPE": event.get("eventType"),
        "EVENT_VALUE": event.get("eventValue"),
        "IMPRESSION": "|".join(impression) if isinstance(impression, list) else impression,
        "RECOMMENDATION_ID": event.get("recommendationId"),
        "EVENT_ATTRIBUTION_SOURCE": attribution.get("eventAttributionSource")
        if isinstance(attribution, dict)
        else None,
    }


def _properties(record: dict[str, Any], schema: DatasetSchema) -> dict[str, Any]:
    properties = record.get("properties") or {}
    if isinstance(properties, str):
        properties = decode_json(properties.encode())
    if not isinstance(properties, dict):
        raise InvalidEventError("properties must be an object or a JSON string of one")
    values = {}
    for key, value in properties.items():
        name = property_field(str(key))
        if schema.field(name) is None or name in _FILLED_BY_RECORD[schema.dataset]:
            raise InvalidEventError(
                f"property {key} maps to {name}, which is not a metadata field of the "
                f"{schema.dataset.capitalize()} schema"
            )
        values[name] = value
    return values


def _checked_row(values: dict[str, Any], schema: DatasetSchema) -> dict[str, Any]:
    """The schema's fields from `values`; raises naming the first field that does not fit.

    Dataset schemas are flat records of primitives (the rules allow nothing else), so a
    per-field type check is the whole Avro validation, at a fraction of fastavro's cost.
    """
    row = {}
    for spec in schema.fields:
        value = values.get(spec.name)
        if value is None:
            if not spec.nullable:
                raise InvalidEventError(f"{spec.name} is required but missing")
        elif not _fits(value, spec.type):
            raise InvalidEventError(
                f"{spec.name} must be {_EXPECTED[spec.type]}, got {type(value).__name__} "
                f"{_shown(value)}"
            )
        row[spec.name] = value
    return row


def _shown(value: Any) -> str:
    """The start of `value`'s repr for a message: a scalar's first 80 characters; a list or
    object through reprlib, whose work is bounded however deep or long the value is."""
    if isinstance(value, str | int | float):
        return f"{value!r:.80}"
    return f"{reprlib.repr(value):.80}"


_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# The largest finite 32-bit float: an Avro float holds the value rounded to 32 bits, and a
# larger one (1e39, finite in JSON and in Python) would be stored as infinity.
FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32 = struct.Struct("<f")
_EXPECTED = {
    "string": "string",
    "int": "int",
    "long": "long",
    "boolean": "boolean",
    "float": f"a finite float (an Avro float: 32 bits, at most {FLOAT32_MAX:.8g} in magnitude)",
    "double": "a finite double",
}


def _fits(value: Any, avro_type: str) -> bool:
    """Whether `value` is a valid Avro `avro_type` and stays finite once stored as one: a
    float must not round to infinity in 32 bits, and no number may be NaN or infinite."""
    if isinstance(value, bool):
        return avro_type == "boolean"
    if avro_type == "string":
        return isinstance(value, str)
    if avro_type in _INT_RANGE:
        low, high = _INT_RANGE[avro_type]
        return isinstance(value, int) and low <= value <= high
    if avro_type in ("float", "double"):
        return isinstance(value, int | float) and _finite(value, avro_type)
    return False


def _finite(value: int | float, avro_type: str) -> bool:
    """Whether `value` is finite as an Avro float (32-bit) or double (64-bit)."""
    try:
        as_double = float(value)  # an int beyond 1.8e308 overflows here
        if avro_type == "float":
            _FLOAT32.pack(as_double)  # raises if it would round to infinity in 32 bits
    except OverflowError:
        return False
    return math.isfinite(as_double)
