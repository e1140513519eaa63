"""Parsing Personalize's filter expression language into the tree of `connector.filters`.

A hand-written recursive-descent parser over a small tokenizer: the grammar is a dozen rules,
and writing it out lets every refusal name the 1-based character position and the reason
(`position 34: expected IN, NOT IN or a comparison operator`), which is what someone fixing
a filter at creation needs. Expressions are only ever parsed into data, never run as code.

    filter     := expression ("|" expression)*
    expression := (INCLUDE | EXCLUDE) ItemID WHERE where [IF user (AND user)*]
    where      := group (OR group)*            -- AND binds tighter than OR
    group      := condition (AND condition)*   -- every condition on the first one's dataset
    condition  := dataset "." FIELD predicate
    predicate  := [NOT] IN "(" (value ("," value)* | $PARAM) ")" | op (NUMBER | $PARAM)
    op         := "=" | "<" | "<=" | ">" | ">="   -- $PARAM only with IN and =

Keywords and dataset names are case-insensitive (Personalize's own examples write `in` and
`itemId`); field names are upper-cased, as streamrec's schema fields are UPPER_SNAKE_CASE;
parameter names keep their case, as filterValues keys must match it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connector.exceptions import FilterExpressionError
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
    Operand,
    Operator,
    Parameter,
    Values,
    conditions,
)

MAX_LENGTH = 2500  # CreateFilter's limit on filterExpression
MAX_PARAMETERS = 25  # the most entries a request's filterValues map may hold
MAX_PARAMETER_NAME = 50  # the longest filterValues key
WILDCARD = "*"  # any event type; Interactions.EVENT_TYPE only


@dataclass(frozen=True)
class Token:
    """One lexeme: kind is word, string, number, param, op, one of ( ) , . | or end."""

    kind: str
    text: str  # a string's content without quotes, a parameter's name without $
    position: int  # 1-based character position of its first character


_LEXEME = re.compile(
    r"(?P<space>\s+)|(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<word>[A-Za-z_]\w*)|(?P<param>\$\w*)|(?P<op><=|>=|<>|!=|[<>=])"
    r'|(?P<punct>[(),.|])|(?P<quote>")',
    re.ASCII,
)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `end` token one past the last character."""
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = _LEXEME.match(text, at)
        if match is None:
            raise FilterExpressionError(at + 1, f"unexpected character {text[at]!r}")
        if match.lastgroup == "quote":
            token, at = _string(text, at)
            tokens.append(token)
            continue
        if match.lastgroup != "space":
            tokens.append(_lexeme(str(match.lastgroup), match.group(), at + 1))
        at = match.end()
    return [*tokens, Token("end", "", len(text) + 1)]


def _lexeme(kind: str, text: str, position: int) -> Token:
    if kind == "punct":
        return Token(text, text, position)
    if kind == "op" and text in ("<>", "!="):
        raise FilterExpressionError(position, "use NOT IN to test that values differ")
    if kind == "param" and not 1 < len(text) <= MAX_PARAMETER_NAME + 1:
        reason = f"a $PARAMETER name is 1 to {MAX_PARAMETER_NAME} letters, digits or _"
        raise FilterExpressionError(position, reason)
    return Token(kind, text[1:] if kind == "param" else text, position)


def _string(text: str, start: int) -> tuple[Token, int]:
    """A double-quoted string from `start`; backslash escapes the next character."""
    content: list[str] = []
    at = start + 1
    while at < len(text) and text[at] != '"':
        at += text[at] == "\\"
        content.append(text[at : at + 1])
        at += 1
    if at >= len(text):
        raise FilterExpressionError(start + 1, "this quoted value is never closed")
    return Token("string", "".join(content), start + 1), at + 1


_DATASETS = {dataset.value.upper(): dataset for dataset in Dataset}
_CURRENT_USER_ONLY_IN_IF = (
    "CurrentUser fields can be tested only in the IF condition at the end of an expression"
)
_OPERATORS = {op.value: op for op in Operator if op not in (Operator.IN, Operator.NOT_IN)}


def parse(text: str) -> Filter:
    """The filter `text` describes; raises FilterExpressionError (position and reason)."""
    if len(text) > MAX_LENGTH:
        raise FilterExpressionError(MAX_LENGTH + 1, f"a filter is at most {MAX_LENGTH} characters")
    return _Parser(tokenize(text)).filter(text)


class _Parser:
    """Consumes the tokens of one filter, left to right, one rule per method."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._next = 0
        self._parameters: set[str] = set()

    @property
    def _token(self) -> Token:
        return self._tokens[self._next]

    def _advance(self) -> Token:
        token = self._token
        self._next += 1
        return token

    def _at(self, *words: str) -> bool:
        return self._token.kind == "word" and self._token.text.upper() in words

    def _fail(self, reason: str, token: Token | None = None) -> FilterExpressionError:
        return FilterExpressionError((token or self._token).position, reason)

    def _expect(self, kind: str, reason: str) -> Token:
        if self._token.kind != kind:
            raise self._fail(reason)
        return self._advance()

    def _keyword(self, word: str) -> None:
        if not self._at(word):
            raise self._fail(f"expected {word}")
        self._advance()

    def filter(self, text: str) -> Filter:
        expressions = [self._expression()]
        while self._token.kind == "|":
            self._advance()
            expressions.append(self._expression())
        if self._at("IF"):
            raise self._fail("an expression has at most one IF, at its end")
        if self._token.kind != "end":
            raise self._fail("expected AND, OR, IF, | or the end of the filter")
        return Filter(text, tuple(expressions))

    def _expression(self) -> Expression:
        if not self._at("INCLUDE", "EXCLUDE"):
            raise self._fail("expected INCLUDE or EXCLUDE")
        action = Action(self._advance().text.upper())
        if self._at("ACTIONID", "USERID"):
            raise self._fail("only ItemID is supported: streamrec filters item recommendations")
        self._keyword("ITEMID")
        self._keyword("WHERE")
        where = self._where()
        return Expression(action, where, self._when() if self._at("IF") else ())

    def _where(self) -> Clause:
        groups = [self._group(None)]
        dataset = conditions(groups[0])[0].dataset
        while self._at("OR"):
            self._advance()
            groups.append(self._group(dataset))
        return groups[0] if len(groups) == 1 else AnyOf(tuple(groups))

    def _group(self, dataset: Dataset | None) -> Clause:
        terms = [self._condition(dataset)]
        while self._at("AND"):
            self._advance()
            terms.append(self._condition(terms[0].dataset))
        return terms[0] if len(terms) == 1 else AllOf(tuple(terms))

    def _when(self) -> tuple[Condition, ...]:
        self._advance()  # IF
        found = [self._condition(Dataset.CURRENT_USER)]
        while self._at("AND"):
            self._advance()
            found.append(self._condition(Dataset.CURRENT_USER))
        if self._at("OR"):
            raise self._fail("an IF condition can be extended only with AND")
        return tuple(found)

    def _condition(self, dataset: Dataset | None) -> Condition:
        found = self._dataset(dataset)
        dot = self._expect(".", f"expected . and a field name after {found.value}")
        field = self._token
        if field.kind != "word" or field.position != dot.position + 1:
            raise self._fail(f"expected a field name right after {found.value}.")
        self._advance()
        interactions = found is Dataset.INTERACTIONS
        if interactions and field.text.upper() != "EVENT_TYPE":
            raise self._fail("Interactions conditions can use only EVENT_TYPE", field)
        begin = self._next
        operator, operand = self._predicate()
        if interactions and operator not in (Operator.IN, Operator.NOT_IN):
            raise self._fail("Interactions.EVENT_TYPE takes IN or NOT IN", self._tokens[begin])
        star = [t for t in self._tokens[begin : self._next] if t.kind == "string"]
        star = [t for t in star if t.text == WILDCARD]
        if star and not interactions:
            raise self._fail('"*" (any event type) is only for Interactions.EVENT_TYPE', star[0])
        return Condition(found, field.text.upper(), operator, operand)

    def _dataset(self, expected: Dataset | None) -> Dataset:
        token = self._token
        if self._at("USERS"):
            raise self._fail("filter on the user's data with IF CurrentUser.FIELD")
        if token.kind != "word" or token.text.upper() not in _DATASETS:
            raise self._fail("expected Items, Interactions or CurrentUser")
        found = _DATASETS[self._advance().text.upper()]
        if expected is None and found is Dataset.CURRENT_USER:
            raise self._fail(_CURRENT_USER_ONLY_IN_IF, token)
        if expected is Dataset.CURRENT_USER and found is not expected:
            raise self._fail("an IF condition can test only CurrentUser fields", token)
        if expected is not None and found is not expected:
            raise self._fail(
                f"conditions joined by AND or OR must all use {expected.value}; "
                "chain another expression with | to filter on another dataset",
                token,
            )
        return found

    def _predicate(self) -> tuple[Operator, Operand]:
        if self._at("NOT"):
            self._advance()
            self._keyword("IN")
            return Operator.NOT_IN, self._list(Operator.NOT_IN)
        if self._at("IN"):
            self._advance()
            return Operator.IN, self._list(Operator.IN)
        if self._token.kind != "op":
            raise self._fail("expected IN, NOT IN or a comparison operator")
        operator = _OPERATORS[self._advance().text]
        return operator, self._comparand(operator)

    def _comparand(self, operator: Operator) -> Operand:
        if self._token.kind == "number":
            return Number(float(self._advance().text))
        if self._token.kind == "param":
            return self._parameter(operator)
        if self._token.kind == "string":
            raise self._fail("comparison operators take a number; use IN for strings")
        if self._token.kind == "word" and self._token.text.upper() in _DATASETS:
            raise self._fail(_CURRENT_USER_ONLY_IN_IF)
        raise self._fail("expected a number or a $PARAMETER")

    def _list(self, operator: Operator) -> Operand:
        self._expect("(", f"expected ( after {operator.value}")
        operand: Operand
        if self._token.kind == "param":
            operand = self._parameter(operator)
        else:
            operand = Values(tuple(self._values()))
        self._expect(")", "expected , or ) after a value")
        return operand

    def _parameter(self, operator: Operator) -> Parameter:
        """A $PARAMETER: only with IN or =, and at most MAX_PARAMETERS distinct ones."""
        if operator not in (Operator.IN, Operator.EQ):
            raise self._fail("a $PARAMETER can be used only with IN or =")
        self._parameters.add(self._token.text)
        if len(self._parameters) > MAX_PARAMETERS:
            raise self._fail(f"a filter may use at most {MAX_PARAMETERS} distinct $PARAMETERS")
        return Parameter(self._advance().text)

    def _values(self) -> list[str]:
        found = [self._value()]
        while self._token.kind == ",":
            self._advance()
            found.append(self._value())
        return found

    def _value(self) -> str:
        if self._token.kind == "word" and self._token.text.upper() in _DATASETS:
            raise self._fail(_CURRENT_USER_ONLY_IN_IF)
        if self._token.kind == "param":
            raise self._fail("a $PARAMETER must be the only value inside ( )")
        if self._token.kind not in ("string", "number"):
            raise self._fail('expected a quoted value such as "drama", or a $PARAMETER')
        return self._advance().text
