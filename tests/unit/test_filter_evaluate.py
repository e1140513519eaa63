"""Filter evaluation on a small hand-made catalogue: which items each form keeps, with
Personalize's semantics (INCLUDE/EXCLUDE, IF, parameters, Interactions), and its speed."""

from __future__ import annotations

import numpy as np
import pytest

from connector.exceptions import FilterValueError
from connector.filters.evaluate import item_mask, parse_filter_values
from connector.filters.grammar import parse
from connector.model.history import HistoryEntry
from connector.stores.catalog import ItemTable

IDS = ["m1", "m2", "m3", "m4", "m5", "m6"]
ROWS = [
    {"GENRES": "Comedy|Drama", "PRICE": "5", "COLOR": "red"},
    {"GENRES": "Drama", "PRICE": "15.5"},
    {"GENRES": "Action", "PRICE": "25"},
    {"GENRES": "Comedy"},
    {},
    {"GENRES": "Sci-Fi|Action", "PRICE": "10.0"},
]
HISTORY = [
    HistoryEntry("m1", "click"),
    HistoryEntry("m3", "Purchase"),
    HistoryEntry("m9", "click"),  # not in the catalogue
    HistoryEntry("m2", "view"),
]
TABLE = ItemTable(IDS, ROWS)
W = "INCLUDE ItemID WHERE "


def kept(
    text: str,
    values: dict[str, str] | None = None,
    user: dict[str, str] | None = None,
) -> list[str]:
    mask = item_mask(parse(text), TABLE, user or {}, HISTORY, values)
    assert mask.dtype == np.bool_ and mask.shape == (len(IDS),)
    return [item for item, keep in zip(IDS, mask, strict=True) if keep]


def test_exclude_interacted_event_types_ignoring_case() -> None:
    text = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "purchase")'
    assert kept(text) == ["m2", "m4", "m5", "m6"]


def test_include_anything_interacted_with() -> None:
    assert kept('INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")') == ["m1", "m2", "m3"]


def test_not_in_on_event_types_matches_the_other_types() -> None:
    text = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("view")'
    assert kept(text) == ["m2", "m4", "m5", "m6"]


def test_categorical_in_matches_any_of_several_values() -> None:
    assert kept(W + 'Items.GENRES IN ("Drama")') == ["m1", "m2"]
    assert kept(W + 'Items.GENRES IN ("Action", "Comedy")') == ["m1", "m3", "m4", "m6"]


def test_not_in_is_the_complement_of_in() -> None:
    assert kept('EXCLUDE ItemID WHERE Items.GENRES NOT IN ("Drama")') == ["m1", "m2"]
    assert kept(W + 'Items.GENRES NOT IN ("Drama")') == ["m3", "m4", "m5", "m6"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("Items.PRICE > 10", ["m2", "m3"]),
        ("Items.PRICE >= 10", ["m2", "m3", "m6"]),
        ("Items.PRICE < 10", ["m1"]),
        ("Items.PRICE <= 10", ["m1", "m6"]),
        ("Items.PRICE = 10", ["m6"]),
        ('Items.PRICE IN ("10", "25")', ["m3", "m6"]),
    ],
)
def test_numeric_comparisons_skip_items_without_a_number(
    condition: str, expected: list[str]
) -> None:
    assert kept(W + condition) == expected


def test_and_binds_tighter_than_or() -> None:
    text = W + 'Items.GENRES IN ("Drama") AND Items.PRICE > 10 OR Items.GENRES IN ("Action")'
    assert kept(text) == ["m2", "m3", "m6"]


def test_parameters_are_filled_from_filter_values() -> None:
    text = W + "Items.GENRES IN ($GENRES)"
    assert kept(text, {"GENRES": '"Comedy","Action"'}) == ["m1", "m3", "m4", "m6"]
    assert kept(W + "Items.PRICE = $P", {"P": '"5"'}) == ["m1"]


def test_include_without_its_parameter_values_is_refused() -> None:
    with pytest.raises(FilterValueError, match="GENRES"):
        kept(W + "Items.GENRES IN ($GENRES)", {"OTHER": '"x"'})


def test_exclude_without_its_parameter_values_is_skipped_whole() -> None:
    text = (
        "EXCLUDE ItemID WHERE Items.GENRES IN ($G) AND Items.PRICE > 1 | "
        'EXCLUDE ItemID WHERE Items.COLOR IN ("red")'
    )
    assert kept(text) == ["m2", "m3", "m4", "m5", "m6"]
    assert kept(text, {"G": '"Drama"'}) == ["m3", "m4", "m5", "m6"]


def test_if_condition_on_the_current_user_decides_whether_an_expression_applies() -> None:
    text = W + 'Items.GENRES IN ("Drama") IF CurrentUser.AGE > 18 AND CurrentUser.TIER IN ("a")'
    assert kept(text, user={"AGE": "30", "TIER": "b|a"}) == ["m1", "m2"]
    assert kept(text, user={"AGE": "16", "TIER": "a"}) == IDS
    assert kept(text, user={"TIER": "a"}) == IDS  # no AGE: the condition is false
    assert kept(text, user={"AGE": "old", "TIER": "a"}) == IDS


def test_current_user_not_in_and_parameters() -> None:
    text = W + 'Items.GENRES IN ("Drama") IF CurrentUser.GENDER NOT IN ("F")'
    assert kept(text, user={"GENDER": "M"}) == ["m1", "m2"]
    assert kept(text, user={"GENDER": "F"}) == IDS
    text = W + 'Items.GENRES IN ("Drama") IF CurrentUser.GENDER IN ($G)'
    assert kept(text, {"G": '"X","F"'}, {"GENDER": "F"}) == ["m1", "m2"]
    assert kept(text, {"G": '"X"'}, {"GENDER": "F"}) == IDS


def test_chained_expressions_intersect_in_any_order() -> None:
    include = W + 'Items.GENRES IN ("Drama", "Comedy")'
    exclude = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    assert kept(f"{include} | {exclude}") == ["m2", "m4"]
    assert kept(f"{exclude} | {include}") == ["m2", "m4"]


def test_unknown_field_matches_nothing() -> None:
    assert kept(W + 'Items.MISSING IN ("x")') == []
    assert kept("EXCLUDE ItemID WHERE Items.MISSING > 1") == IDS


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ('"Comedy","Drama"', ("Comedy", "Drama")),
        (' "a, b" , 10 ', ("a, b", "10")),
        ('"only"', ("only",)),
    ],
)
def test_filter_values_format(text: str, values: tuple[str, ...]) -> None:
    assert parse_filter_values(text) == values


@pytest.mark.parametrize("text", ["Comedy", '"a" "b"', '"a",', "", '"open', '"a",,"b"'])
def test_malformed_filter_values_are_refused(text: str) -> None:
    with pytest.raises(FilterValueError, match="filter value"):
        parse_filter_values(text)


def test_item_table_columns() -> None:
    assert TABLE.fields == {"GENRES", "PRICE", "COLOR"}
    assert TABLE.mask_of(["m6", "zzz", "m1"]).tolist() == [1, 0, 0, 0, 0, 1]
    assert np.isnan(TABLE.numeric("PRICE")[[3, 4]]).all()
    assert TABLE.numeric("NOPE").shape == (6,)
    assert TABLE.matches("GENRES", ["Comedy|Drama"]).tolist() == [1, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="2 item ids but 1"):
        ItemTable(["a", "b"], [{}])


def test_a_large_catalogue_gives_the_same_mask_as_a_direct_computation() -> None:
    """100,000 items through the vectorised path, checked against a plain loop (speed is
    measured by bench/serve.py, never asserted in tests)."""
    count = 100_000
    rng = np.random.default_rng(7)
    genres = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
    rows = [
        {"GENRES": f"{genres[n % 5]}|{genres[(n // 5) % 5]}", "PRICE": str(rng.integers(100))}
        for n in range(count)
    ]
    table = ItemTable([f"i{n}" for n in range(count)], rows)
    clicked = set(range(0, 200 * 7, 7))
    history = [HistoryEntry(f"i{n}", "click") for n in sorted(clicked)]
    parsed = parse(
        W + 'Items.GENRES IN ($G) AND Items.PRICE < 50 OR Items.GENRES IN ("Horror") '
        '| EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    )
    mask = item_mask(parsed, table, {}, history, {"G": '"Comedy","Drama"'})
    expected = []
    for n, row in enumerate(rows):
        values = set(row["GENRES"].split("|"))
        wanted = (values & {"Comedy", "Drama"} and int(row["PRICE"]) < 50) or "Horror" in values
        expected.append(bool(wanted) and n not in clicked)
    assert mask.tolist() == expected
