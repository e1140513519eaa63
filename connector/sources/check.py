"""A mapping checked against the Avro schema of its topic's records, when it is created: every
path exists in the schema, and each field's value can become what its target needs (a
string id, a number of seconds, ...). MappingError names the first field that fails."""

from __future__ import annotations

from typing import Any

from connector.exceptions import MappingError
from connector.sources.mapping import (
    CONVERSION_INPUTS,
    PROPERTY_PREFIX,
    FieldRule,
    Path,
    SourceMapping,
)

NUMBERS = ("int", "long", "float", "double")
# What a target field takes without a conversion, by Avro type.
TARGET_TYPES = {
    "sentAt": NUMBERS,
    "eventValue": NUMBERS,
    "impression": ("array", "string"),
}
PROPERTY_TYPES = ("string", "boolean", *NUMBERS)
ID_TYPES = ("string",)


def check_against(mapping: SourceMapping, schema: dict[str, Any], under: str = "") -> None:
    """Raise MappingError if a path of `mapping` is not in `schema` or its type cannot
    become the target field's; `under` names the field the paths start from (`after`, the
    row of a Debezium change event), else they start at the record."""
    named = _named_types(schema)
    root: Any = schema if not under else _nodes_at(Path.parse(under), schema, named)
    for rule in mapping.fields:
        if rule.path is not None:
            _check_rule(rule, _types_at(rule.path, root, named))
    for condition in mapping.skip:
        _types_at(condition.path, root, named)


def _check_rule(rule: FieldRule, types: set[str]) -> None:
    if rule.values is not None:
        return  # the value map decides what comes out
    if rule.convert is not None:
        accepted: tuple[str, ...] = CONVERSION_INPUTS[rule.convert]
        what = f"convert {rule.convert}"
    elif rule.target.startswith(PROPERTY_PREFIX):
        accepted, what = PROPERTY_TYPES, "a property"
    else:
        accepted, what = TARGET_TYPES.get(rule.target, ID_TYPES), rule.target
    wrong = sorted(types - {"null"} - set(accepted))
    if wrong:
        raise MappingError(
            f"{rule.target}: path {rule.path.text if rule.path else ''} is {'/'.join(wrong)}, "
            f"which {what} cannot take (it takes {', '.join(accepted)})"
            + ("; add a conversion" if rule.convert is None else "")
        )


def _types_at(path: Path, schema: Any, named: dict[str, Any]) -> set[str]:
    """The Avro types the value at `path` may have; MappingError if a step is not there."""
    return {_type_name(node) for node in _branches(_nodes_at(path, schema, named), named)}


def _nodes_at(path: Path, schema: Any, named: dict[str, Any]) -> list[Any]:
    """The schema nodes the value at `path` may be; MappingError if a step is not there."""
    current = [schema]
    for depth, step in enumerate(path.steps):
        found = []
        for node in _branches(current, named):
            if isinstance(step, int) and isinstance(node, dict) and node.get("type") == "array":
                found.append(node["items"])
            elif isinstance(step, str) and isinstance(node, dict) and node.get("type") == "record":
                found.extend(f["type"] for f in node.get("fields", []) if f["name"] == step)
            elif isinstance(step, str) and isinstance(node, dict) and node.get("type") == "map":
                found.append(node["values"])
        if not found:
            so_far = _spelled(path.steps[: depth + 1])
            raise MappingError(f"path {path.text}: {so_far} is not in the topic's schema")
        current = found
    return current


def _branches(nodes: list[Any], named: dict[str, Any]) -> list[Any]:
    """Union members and named-type references resolved, nested unions flattened."""
    resolved: list[Any] = []
    for node in nodes:
        if isinstance(node, list):
            resolved.extend(_branches(node, named))
        elif isinstance(node, str) and node in named:
            resolved.append(named[node])
        elif isinstance(node, dict) and isinstance(node.get("type"), dict | list):
            resolved.extend(_branches([node["type"]], named))
        else:
            resolved.append(node)
    return resolved


def _type_name(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "enum":
            return "string"  # read as its symbol
        if node.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
            return str(node["type"])
        return str(node.get("type"))
    return str(node)


def _named_types(schema: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if isinstance(schema, list):
        for branch in schema:
            found.update(_named_types(branch))
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed") and "name" in schema:
            found[schema["name"]] = schema
            if "namespace" in schema:
                found[f"{schema['namespace']}.{schema['name']}"] = schema
        for inner in [f["type"] for f in schema.get("fields", [])] + [
            schema.get("items"),
            schema.get("values"),
        ]:
            if inner is not None:
                found.update(_named_types(inner))
        if isinstance(schema.get("type"), dict | list):
            found.update(_named_types(schema["type"]))
    return found


def _spelled(steps: tuple[str | int, ...]) -> str:
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text
