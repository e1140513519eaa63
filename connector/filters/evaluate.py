"""Applying a parsed filter to the catalogue: one boolean mask over the items, per request.

Semantics follow Amazon Personalize:

- the mask starts all True; each expression is applied in turn to what the previous ones
  left: INCLUDE keeps only the items its WHERE clause matches, EXCLUDE removes them. So a
  filter is the intersection of its expressions, and their order does not change the result;
- an expression whose IF conditions on the current user do not all hold does not apply;
- an INCLUDE expression needs a value for each of its $PARAMETERS (FilterValueError without);
  an EXCLUDE expression missing one is skipped whole, as Personalize "doesn't use that
  portion of the expression";
- `Interactions.EVENT_TYPE IN (...)` matches the items the user interacted with in events of
  those types (the connector's interacted-items set, docs/redis-keys.md), case-insensitively
  as Personalize matches event types ("*" is any type), and NOT IN the items of events of
  the other types;
- `IN` matches when any of the item's `|`-separated values equals any listed value; NOT IN is
  exactly its complement, so an item without the field is NOT IN every list; comparisons
  are numeric, and an item without a number for the field fails every comparison.

Each condition on items costs a few vectorised numpy operations over the ItemTable's
precomputed columns, so evaluation does not grow with Python work per item.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from connector.exceptions import FilterExpressionError, FilterValueError
from connector.filters import (
    Action,
    AllOf,
    AnyOf,
    Clause,
    Condition,
    Dataset,
    Expression,
    Filter,
    Number,
    Operator,
    Parameter,
    Values,
)
from connector.filters.grammar import WILDCARD, tokenize
from connector.model.history import ItemEvent
from connector.stores.catalog import ItemTable, as_number, values_of

_COMPARE: dict[Operator, Callable[[Any, Any], Any]] = {
    Operator.EQ: op.eq,
    Operator.LT: op.lt,
    Operator.LE: op.le,
    Operator.GT: op.gt,
    Operator.GE: op.ge,
}


@dataclass(frozen=True)
class _Request:
    """What one evaluation reads besides the filter."""

    items: ItemTable
    user: Mapping[str, str]
    history: Sequence[ItemEvent]
    values: Mapping[str, tuple[str, ...]]


def item_mask(
    parsed: Filter,
    items: ItemTable,
    user: Mapping[str, str],
    history: Sequence[ItemEvent],
    filter_values: Mapping[str, str] | None = None,
) -> np.ndarray:
    """True where an item may be recommended. `user` is the current user's metadata (field
    -> text), `history` the items they interacted with and the event types of those
    interactions, `filter_values` Personalize's filterValues (parameter name ->
    `"\\"a\\",\\"b\\""`)."""
    values = {
        name: parse_filter_values(text)
        for name, text in (filter_values or {}).items()
        if name in parsed.parameters
    }
    _require_include_values(parsed, values)
    request = _Request(items, user, history, values)
    mask = np.ones(items.size, dtype=bool)
    for expression in parsed.expressions:
        if _applies(expression, request):
            matched = _clause(expression.where, request)
            mask &= matched if expression.action is Action.INCLUDE else ~matched
    return mask


def parse_filter_values(text: str) -> tuple[str, ...]:
    """One filterValues entry: quoted values (or numbers) separated by commas."""
    try:
        tokens = tokenize(text)[:-1]
    except FilterExpressionError as exc:
        raise FilterValueError(f"filter value {text!r}: {exc.reason}") from exc
    values, commas = tokens[0::2], tokens[1::2]
    well_formed = len(tokens) % 2 == 1 and all(t.kind == "," for t in commas)
    if not well_formed or any(t.kind not in ("string", "number") for t in values):
        raise FilterValueError(
            f'filter value {text!r}: expected quoted values separated by commas, e.g. "\\"a\\""'
        )
    return tuple(t.text for t in values)


def _require_include_values(parsed: Filter, values: Mapping[str, tuple[str, ...]]) -> None:
    for expression in parsed.expressions:
        missing = expression.parameters - values.keys()
        if expression.action is Action.INCLUDE and missing:
            raise FilterValueError(
                f"filterValues must give {', '.join(sorted(missing))}: an INCLUDE "
                "expression needs a value for each of its parameters"
            )


def _applies(expression: Expression, request: _Request) -> bool:
    if expression.parameters - request.values.keys():
        return False  # an EXCLUDE without its values (INCLUDE was refused before)
    return all(_user_holds(condition, request) for condition in expression.when)


def _texts(condition: Condition, request: _Request) -> tuple[str, ...]:
    if isinstance(condition.operand, Parameter):
        return request.values[condition.operand.name]
    if isinstance(condition.operand, Values):
        return condition.operand.items
    raise TypeError(f"{condition.operator.value} takes values, not a number")


def _clause(clause: Clause, request: _Request) -> np.ndarray:
    if isinstance(clause, AllOf):
        return np.asarray(np.logical_and.reduce([_clause(t, request) for t in clause.terms]))
    if isinstance(clause, AnyOf):
        return np.asarray(np.logical_or.reduce([_clause(t, request) for t in clause.terms]))
    if clause.dataset is Dataset.INTERACTIONS:
        return request.items.mask_of(_interacted(clause, request))
    return _item_condition(clause, request)


def _item_condition(condition: Condition, request: _Request) -> np.ndarray:
    if isinstance(condition.operand, Number):
        column = request.items.numeric(condition.field)
        with np.errstate(invalid="ignore"):
            return np.asarray(_COMPARE[condition.operator](column, condition.operand.value))
    matched = request.items.matches(condition.field, _texts(condition, request))
    return ~matched if condition.operator is Operator.NOT_IN else matched


def _interacted(condition: Condition, request: _Request) -> list[str]:
    """Items of the user's events whose type is (IN) or is not (NOT IN) one listed."""
    wanted = {text.casefold() for text in _texts(condition, request)}
    negate = condition.operator is Operator.NOT_IN
    return [
        entry.item
        for entry in request.history
        if (WILDCARD in wanted or (entry.event_type or "").casefold() in wanted) != negate
    ]


def _user_holds(condition: Condition, request: _Request) -> bool:
    """A CurrentUser condition, with the same rules as on items."""
    text = request.user.get(condition.field)
    if isinstance(condition.operand, Number):
        number = as_number(text) if text is not None else None
        if number is None:
            return False
        return bool(_COMPARE[condition.operator](number, condition.operand.value))
    matched = text is not None and _any_equal(values_of(text), _texts(condition, request))
    return not matched if condition.operator is Operator.NOT_IN else matched


def _any_equal(held: set[str], wanted: Sequence[str]) -> bool:
    if not held.isdisjoint(wanted):
        return True
    numbers = {as_number(text) for text in held} - {None}
    return any(as_number(text) in numbers for text in wanted if as_number(text) is not None)
