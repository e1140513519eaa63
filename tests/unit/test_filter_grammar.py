"""The filter expression parser: every form Personalize documents becomes the expected tree,
and every malformed expression is refused at the exact 1-based position with its reason."""

from __future__ import annotations

import pytest

from connector.exceptions import FilterExpressionError, StreamrecError
from connector.filters import (
    Action,
    AllOf,
    AnyOf,
    Condition,
    Dataset,
    Expression,
    Number,
    Operator,
    Parameter,
    Values,
)
from connector.filters.grammar import MAX_LENGTH, MAX_PARAMETERS, parse

ITEMS, INTERACTIONS, USER = Dataset.ITEMS, Dataset.INTERACTIONS, Dataset.CURRENT_USER
W = "INCLUDE ItemID WHERE "


def only(text: str) -> Expression:
    [expression] = parse(text).expressions
    return expression


def test_interactions_event_types_are_excluded() -> None:
    expression = only('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "purchase")')
    assert expression == Expression(
        Action.EXCLUDE,
        Condition(INTERACTIONS, "EVENT_TYPE", Operator.IN, Values(("click", "purchase"))),
    )
    assert expression.dataset is INTERACTIONS


def test_wildcard_and_not_in_on_event_types() -> None:
    assert only('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")').where == Condition(
        INTERACTIONS, "EVENT_TYPE", Operator.IN, Values(("*",))
    )
    negated = only('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("view")').where
    assert negated == Condition(INTERACTIONS, "EVENT_TYPE", Operator.NOT_IN, Values(("view",)))


def test_parameter_in_a_list() -> None:
    parsed = parse("INCLUDE ItemID WHERE Items.GENRE IN ($GENRES)")
    assert parsed.expressions[0].where == Condition(
        ITEMS, "GENRE", Operator.IN, Parameter("GENRES")
    )
    assert parsed.parameters == {"GENRES"}


@pytest.mark.parametrize(
    ("written", "operator"),
    [("<", Operator.LT), ("<=", Operator.LE), (">", Operator.GT), (">=", Operator.GE)]
    + [("=", Operator.EQ)],
)
def test_numeric_comparisons(written: str, operator: Operator) -> None:
    where = only(f"INCLUDE ItemID WHERE Items.PRICE {written} 10").where
    assert where == Condition(ITEMS, "PRICE", operator, Number(10.0))


def test_numbers_may_be_negative_decimal_or_exponent() -> None:
    assert only(W + "Items.T >= -2.5").where == Condition(ITEMS, "T", Operator.GE, Number(-2.5))
    assert only(W + "Items.T < 1e3").where == Condition(ITEMS, "T", Operator.LT, Number(1000.0))


def test_equals_takes_a_parameter() -> None:
    assert only(W + "Items.PRICE = $Price").where == Condition(
        ITEMS, "PRICE", Operator.EQ, Parameter("Price")
    )


def test_and_binds_tighter_than_or() -> None:
    where = only(W + 'Items.A IN ("a") AND Items.B NOT IN ("b") OR Items.C > 3').where
    a = Condition(ITEMS, "A", Operator.IN, Values(("a",)))
    b = Condition(ITEMS, "B", Operator.NOT_IN, Values(("b",)))
    c = Condition(ITEMS, "C", Operator.GT, Number(3.0))
    assert where == AnyOf((AllOf((a, b)), c))


def test_if_current_user_conditions_joined_by_and() -> None:
    expression = only(
        "EXCLUDE ItemID WHERE Items.DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND "
        'CurrentUser.TIER IN ("gold", "silver")'
    )
    assert expression.when == (
        Condition(USER, "AGE", Operator.GT, Number(18.0)),
        Condition(USER, "TIER", Operator.IN, Values(("gold", "silver"))),
    )


def test_expressions_chained_with_pipes_keep_their_order() -> None:
    parsed = parse(
        'INCLUDE ItemID WHERE Items.GENRE IN ("drama") | '
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "stream")'
    )
    assert [e.action for e in parsed.expressions] == [Action.INCLUDE, Action.EXCLUDE]
    assert [e.dataset for e in parsed.expressions] == [ITEMS, INTERACTIONS]


def test_keywords_and_datasets_ignore_case_fields_are_upper_cased() -> None:
    expression = only('exclude itemId where INTERACTIONS.event_type in ("Purchase")')
    assert expression.where == Condition(
        INTERACTIONS, "EVENT_TYPE", Operator.IN, Values(("Purchase",))
    )


def test_quoted_values_keep_commas_escapes_and_case() -> None:
    where = only(W + r'Items.T IN ("a, b", "say \"hi\"", "Back\\slash", 7)').where
    assert where == Condition(
        ITEMS, "T", Operator.IN, Values(("a, b", 'say "hi"', "Back\\slash", "7"))
    )


def test_the_text_is_kept() -> None:
    text = W + 'Items.GENRE IN ("a")'
    assert parse(text).text == text


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 1, "expected INCLUDE or EXCLUDE"),
        ('EXCLUDE ItemID WHERE Items.GENRE LIKE ("x")', 34, "expected IN, NOT IN or a comparison"),
        ('INCLUDE UserID WHERE Items.GENRE IN ("a")', 9, "only ItemID is supported"),
        ('INCLUDE ItemID Items.GENRE IN ("a")', 16, "expected WHERE"),
        (W + 'Items.G IN ("a") AND Interactions.EVENT_TYPE IN ("c")', 43, "must all use Items"),
        (W + "CurrentUser.AGE > 18", 22, "only in the IF condition"),
        (W + 'Items.G IN ("a") IF CurrentUser.A > 1 OR CurrentUser.A < 0', 60, "only with AND"),
        (W + 'Items.G IN ("a") IF CurrentUser.A > 1 IF CurrentUser.A < 0', 60, "at most one IF"),
        (W + "Items.GENRE NOT IN ($GENRES)", 42, "$PARAMETER can be used only with IN or ="),
        (W + "Items.PRICE > $PRICE", 36, "$PARAMETER can be used only with IN or ="),
        (W + 'Items.PRICE > "10"', 36, "comparison operators take a number"),
        (W + 'Interactions.TIMESTAMP IN ("1")', 35, "can use only EVENT_TYPE"),
        (W + "Interactions.EVENT_TYPE = 3", 46, "takes IN or NOT IN"),
        (W + 'Items.GENRE IN ("*")', 38, '"*" (any event type) is only for'),
        (W + 'Items.GENRE IN ("drama)', 38, "never closed"),
        (W + "Items.PRICE != 3", 34, "use NOT IN"),
        (W + "Items.GENRE IN ('a')", 38, "unexpected character"),
        (W + 'Items.GENRE IN ("a" "b")', 42, "expected , or )"),
        (W + 'Items.GENRE IN ("a", $G)', 43, "must be the only value"),
        (W + "Items.GENRE = CurrentUser.GENRE", 36, "only in the IF condition"),
        (W + 'Items.GENRE IN ("a") Items.PRICE > 3', 43, "expected AND, OR, IF, |"),
        (W + "Users.AGE > 3", 22, "IF CurrentUser.FIELD"),
        (W + 'Items.GENRE IN ("a") IF Items.PRICE > 3', 46, "only CurrentUser fields"),
        (W + "Items.GENRE IN ($)", 38, "$PARAMETER name is 1 to 50"),
        (W + 'Items.GENRE IN ("a") |', 44, "expected INCLUDE or EXCLUDE"),
        (W + 'Items. IN ("a")', 29, "field name right after Items."),
        (W + "Items.GENRE IN ()", 38, "expected a quoted value"),
        (W + "Items.GENRE IN", 36, "expected ( after IN"),
    ],
)
def test_malformed_expressions_give_position_and_reason(
    text: str, position: int, reason: str
) -> None:
    with pytest.raises(FilterExpressionError) as caught:
        parse(text)
    assert caught.value.position == position
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"position {position}: ")


def test_errors_are_streamrec_and_value_errors() -> None:
    with pytest.raises(StreamrecError):
        parse("nonsense")
    with pytest.raises(ValueError, match=r"^position 1: expected INCLUDE or EXCLUDE$"):
        parse("nonsense")


def test_expression_length_is_bounded() -> None:
    text = W + 'Items.G IN ("' + "x" * MAX_LENGTH + '")'
    with pytest.raises(FilterExpressionError) as caught:
        parse(text)
    assert caught.value.position == MAX_LENGTH + 1


def test_number_of_distinct_parameters_is_bounded() -> None:
    names = [f"$P{n}" for n in range(MAX_PARAMETERS + 1)]
    text = " OR ".join(f"Items.F{n} IN ({name})" for n, name in enumerate(names))
    with pytest.raises(FilterExpressionError, match="at most 25 distinct") as caught:
        parse(W + text)
    assert caught.value.position == (W + text).index(names[-1]) + 1
    assert len(parse(W + text.rsplit(" OR ", 1)[0]).parameters) == MAX_PARAMETERS


def test_a_reused_parameter_counts_once() -> None:
    parsed = parse(W + "Items.A IN ($X) OR Items.B = $X | EXCLUDE ItemID WHERE Items.C IN ($X)")
    assert parsed.parameters == {"X"}
