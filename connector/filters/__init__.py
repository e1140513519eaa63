"""Recommendation filters: what a parsed filter expression is.

A filter is Amazon Personalize's filter expression language (`EXCLUDE ItemID WHERE
Interactions.EVENT_TYPE IN ("click")`), parsed once by `connector.filters.grammar.parse` into
the frozen tree below, evaluated per request by `connector.filters.evaluate.item_mask` and
stored by name in `connector.filters.store`. The tree lives here, apart from the parser and the
evaluator, because both of them and the store speak it; nothing here is ever run as code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Action(Enum):
    """What an expression does with the items its WHERE clause matches."""

    INCLUDE = "INCLUDE"  # keep only matching items
    EXCLUDE = "EXCLUDE"  # remove matching items


class Dataset(Enum):
    """Whose data a condition reads."""

    ITEMS = "Items"  # the candidate item's metadata
    INTERACTIONS = "Interactions"  # the current user's recent events
    CURRENT_USER = "CurrentUser"  # the current user's metadata (IF conditions only)


class Operator(Enum):
    """How a field is compared with the operand."""

    IN = "IN"
    NOT_IN = "NOT IN"
    EQ = "="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True)
class Values:
    """A literal list `("a", "b", 3)`; numbers are kept in their written spelling."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Number:
    """The number a comparison operator compares with."""

    value: float


@dataclass(frozen=True)
class Parameter:
    """A `$NAME` placeholder filled from the request's filterValues."""

    name: str


Operand = Values | Number | Parameter


@dataclass(frozen=True)
class Condition:
    """`Dataset.FIELD operator operand`; field names are upper-cased like schema fields."""

    dataset: Dataset
    field: str
    operator: Operator
    operand: Operand


@dataclass(frozen=True)
class AllOf:
    """Conditions joined by AND: all must hold."""

    terms: tuple[Clause, ...]


@dataclass(frozen=True)
class AnyOf:
    """Groups joined by OR: one must hold (AND binds tighter than OR)."""

    terms: tuple[Clause, ...]


Clause = Condition | AllOf | AnyOf


def conditions(clause: Clause) -> tuple[Condition, ...]:
    """Every condition of a clause, left to right."""
    if isinstance(clause, Condition):
        return (clause,)
    return tuple(found for term in clause.terms for found in conditions(term))


@dataclass(frozen=True)
class Expression:
    """One `INCLUDE|EXCLUDE ItemID WHERE ... [IF ...]` between pipes. `when` holds the
    CurrentUser conditions after IF (all must hold for the expression to apply)."""

    action: Action
    where: Clause
    when: tuple[Condition, ...] = ()

    @property
    def dataset(self) -> Dataset:
        """The dataset of the WHERE clause (all its conditions share it)."""
        return conditions(self.where)[0].dataset

    @property
    def parameters(self) -> frozenset[str]:
        """Names of the $PARAMETERS this expression needs."""
        found = conditions(self.where) + self.when
        return frozenset(c.operand.name for c in found if isinstance(c.operand, Parameter))


@dataclass(frozen=True)
class Filter:
    """A parsed filter: its expressions in the order written, and the text they came from."""

    text: str
    expressions: tuple[Expression, ...]

    @property
    def parameters(self) -> frozenset[str]:
        """Names of every $PARAMETER the filter uses."""
        return frozenset().union(*(e.parameters for e in self.expressions))
