"""How a record of an existing topic becomes a PutEvents event (or an item or user entry):
a mapping file, parsed and checked once, applied to each record (docs/sources.md).

A mapping is JSON:

    {"target": "events",
     "skip": [{"path": "type", "in": ["heartbeat"]}],
     "fields": {
       "userId":    {"path": "user.id", "convert": "string"},
       "eventType": {"path": "type", "values": {"page_view": "view"}},
       "itemId":    {"path": "items[0].sku"},
       "sentAt":    {"path": "ts", "convert": "epoch_millis"},
       "properties.device": {"path": "context.device", "convert": "lower"}}}

Each target field takes a value from a path in the record (keys separated by dots, `[n]`
for an array element) or a constant (`"const"`), then optionally a conversion and a value
map (`"values"`, with `"default"` for values it does not list; without one an unlisted value
passes unchanged). A record is skipped (neither stored nor dead-lettered) when any `skip`
condition holds. A step that fails raises MappingError naming the field and the step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from connector.exceptions import MappingError

TARGETS = ("events", "items", "users")
# The PutEvents fields a mapping may fill, besides `properties.<name>`.
EVENT_FIELDS = (
    "userId",
    "sessionId",
    "eventId",
    "eventType",
    "eventValue",
    "itemId",
    "sentAt",
    "impression",
    "recommendationId",
)
ID_FIELD = {"events": "userId", "items": "itemId", "users": "userId"}
REQUIRED = {"events": ("eventType", "sentAt"), "items": ("itemId",), "users": ("userId",)}
PROPERTY_PREFIX = "properties."
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


def _epoch(divisor: float) -> Callable[[Any], Any]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{value!r} is not a number")
        return int(float(value) // divisor)

    return convert


def _iso8601(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO-8601 string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return int(parsed.timestamp())


def _text(change: Callable[[str], str]) -> Callable[[Any], Any]:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        return change(value)

    return convert


def _string(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a number or string")
    return value if isinstance(value, str) else str(value)


CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "epoch_millis": _epoch(1000),
    "epoch_seconds": _epoch(1),
    "iso8601": _iso8601,
    "lower": _text(str.lower),
    "upper": _text(str.upper),
    "string": _string,
}
# What each conversion reads, for the check against an Avro schema (check.py).
CONVERSION_INPUTS = {
    "epoch_millis": ("int", "long", "float", "double", "string"),
    "epoch_seconds": ("int", "long", "float", "double", "string"),
    "iso8601": ("string",),
    "lower": ("string",),
    "upper": ("string",),
    "string": ("int", "long", "float", "double", "string"),
}


@dataclass(frozen=True)
class Path:
    """Keys and array indexes from the record's root, as written (`a.b[0].c`)."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> Path:
        steps: list[str | int] = []
        position = 0
        for match in _STEP.finditer(text):
            between = text[position : match.start()]
            if between not in ("", "."):
                raise MappingError(f"path {text!r}: cannot read {between!r}")
            key, index = match.groups()
            steps.append(int(index) if index is not None else key)
            position = match.end()
        if not steps or position != len(text) or isinstance(steps[0], int):
            raise MappingError(f"path {text!r} must start with a key, like a.b[0].c")
        return cls(text, tuple(steps))

    @cached_property
    def _steps(self) -> tuple[tuple[str | int, type], ...]:
        """Each step with the type it may be taken in: an index in an array, a key in an
        object."""
        return tuple((step, list if isinstance(step, int) else dict) for step in self.steps)

    def read(self, record: Any) -> Any:
        """The value at this path, or _MISSING where a step finds nothing: a key of
        anything but an object, or an index of anything but an array (or past its end)."""
        value: Any = record
        try:
            for step, container in self._steps:
                if value.__class__ is not container:
                    return _MISSING
                value = value[step]  # type: ignore[index]  # a list or a dict, tested above
        except (KeyError, IndexError):
            return _MISSING
        return value


@dataclass(frozen=True)
class FieldRule:
    """Where one target field's value comes from and what is done to it."""

    target: str
    path: Path | None
    constant: Any = None
    convert: str | None = None
    values: Mapping[str, Any] | None = None
    default: Any = _MISSING

    def value(self, record: Any) -> Any:
        """The field's value for `record`; _MISSING when its path finds nothing."""
        value = self.constant if self.path is None else self.path.read(record)
        if value is _MISSING or value is None:
            return _MISSING
        if self.convert is None and self.values is None:
            return value
        if self.convert is not None:
            try:
                value = CONVERSIONS[self.convert](value)
            except (ValueError, OverflowError) as exc:
                raise MappingError(
                    f"{self.target}: {self.convert} of {self.source()}: {exc}"
                ) from exc
        if self.values is not None:
            key = str(value)
            if key in self.values:
                value = self.values[key]
            elif self.default is not _MISSING:
                value = self.default
        return value

    def source(self) -> str:
        """Where the value comes from, for messages."""
        return f"path {self.path.text}" if self.path is not None else "the constant"


@dataclass(frozen=True)
class Condition:
    """A skip condition on the value at `path`: it is one of `among` (`kind` "in"), none of
    them ("not_in"), absent or null ("absent"), or there ("present")."""

    path: Path
    kind: str
    among: tuple[Any, ...] = ()

    def holds(self, record: Any) -> bool:
        value = self.path.read(record)
        absent = value is _MISSING or value is None
        if self.kind in ("absent", "present"):
            return absent == (self.kind == "absent")
        found = not absent and value in self.among
        return found == (self.kind == "in")


@dataclass(frozen=True)
class SourceMapping:
    """A parsed mapping: its target and rules."""

    target: str
    fields: tuple[FieldRule, ...]
    skip: tuple[Condition, ...] = field(default=())

    @cached_property
    def _placed(self) -> tuple[tuple[FieldRule, bool, str], ...]:
        """Each rule with whether it fills a property, and the name it fills."""
        return tuple(
            (rule, True, rule.target[len(PROPERTY_PREFIX) :])
            if rule.target.startswith(PROPERTY_PREFIX)
            else (rule, False, rule.target)
            for rule in self.fields
        )

    def id_rule(self) -> FieldRule:
        """The rule of the target's id field (itemId or userId; userId for events)."""
        return next(rule for rule in self.fields if rule.target == ID_FIELD[self.target])

    def apply(self, record: Any) -> dict[str, Any] | None:
        """The target entry (PutEvents event fields with `properties`, or an item or user
        entry) for `record`, or None when a skip condition holds."""
        for condition in self.skip:
            if condition.holds(record):
                return None
        entry: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for rule, into, name in self._placed:
            value = rule.value(record)
            if value is not _MISSING:
                (properties if into else entry)[name] = value
        for name in REQUIRED[self.target]:
            if name not in entry:
                rule = next(r for r in self.fields if r.target == name)
                raise MappingError(f"{name}: {rule.source()} finds no value")
        if self.target == "events" and not {"userId", "sessionId"} & entry.keys():
            raise MappingError("userId and sessionId: neither path finds a value")
        if properties:
            entry["properties"] = properties
        return entry


def parse_mapping(document: Any) -> SourceMapping:
    """A mapping file's JSON, checked for its own shape (check.py checks it against an Avro
    schema); MappingError naming what is wrong."""
    if not isinstance(document, dict):
        raise MappingError("a mapping is a JSON object with target, fields and skip")
    unknown = set(document) - {"target", "fields", "skip"}
    if unknown:
        raise MappingError(f"unknown mapping keys: {', '.join(sorted(unknown))}")
    target = document.get("target", "events")
    if target not in TARGETS:
        raise MappingError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    fields = document.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise MappingError("fields must map target fields to their rules")
    rules = tuple(_rule(target, name, rule) for name, rule in fields.items())
    mapped = {rule.target for rule in rules}
    missing = [name for name in REQUIRED[target] if name not in mapped]
    if target == "events" and not mapped & {"userId", "sessionId"}:
        missing.append("userId or sessionId")
    if missing:
        raise MappingError(f"required fields are not mapped: {', '.join(missing)}")
    skip = document.get("skip", [])
    if not isinstance(skip, list):
        raise MappingError("skip must be a list of conditions")
    return SourceMapping(target, rules, tuple(_condition(entry) for entry in skip))


def _rule(target: str, name: Any, rule: Any) -> FieldRule:
    allowed = EVENT_FIELDS if target == "events" else (ID_FIELD[target],)
    if not isinstance(name, str) or not (
        name in allowed or (name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX))
    ):
        raise MappingError(
            f"{name!r} is not a field of {target}: use {', '.join(allowed)} or properties.<name>"
        )
    if not isinstance(rule, dict) or ("path" in rule) == ("const" in rule):
        raise MappingError(f"{name}: give exactly one of path or const")
    unknown = set(rule) - {"path", "const", "convert", "values", "default"}
    if unknown:
        raise MappingError(f"{name}: unknown rule keys: {', '.join(sorted(unknown))}")
    convert = rule.get("convert")
    if convert is not None and convert not in CONVERSIONS:
        raise MappingError(
            f"{name}: convert must be one of {', '.join(CONVERSIONS)}, not {convert!r}"
        )
    values = rule.get("values")
    if values is not None and not isinstance(values, dict):
        raise MappingError(f"{name}: values must map values to values")
    if "path" in rule and not isinstance(rule["path"], str):
        raise MappingError(f"{name}: path must be a string")
    path = Path.parse(rule["path"]) if "path" in rule else None
    default = rule.get("default", _MISSING)
    return FieldRule(name, path, rule.get("const"), convert, values, default)


def _condition(entry: Any) -> Condition:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise MappingError("each skip condition needs a path")
    kinds = [key for key in ("equals", "in", "not_in", "missing") if key in entry]
    if len(kinds) != 1 or set(entry) - {"path", *kinds}:
        raise MappingError(
            f"skip condition on {entry['path']!r}: give path and one of equals, in, not_in, missing"
        )
    path = Path.parse(entry["path"])
    kind = kinds[0]
    if kind == "missing":
        return Condition(path, "absent" if entry["missing"] else "present")
    among = [entry["equals"]] if kind == "equals" else entry[kind]
    if not isinstance(among, list):
        raise MappingError(f"skip condition on {path.text!r}: {kind} takes a list")
    return Condition(path, "not_in" if kind == "not_in" else "in", tuple(among))
