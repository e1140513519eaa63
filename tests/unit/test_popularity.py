"""Recency-weighted popularity and item age, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from worker.data.interactions import Interactions, from_rows
from worker.training.popularity import UNKNOWN_TIME, by_context, created, popularity

DAY = 24 * 3600


def data() -> Interactions:
    rows = [
        {"USER_ID": "u1", "ITEM_ID": "a", "TIMESTAMP": 10 * DAY},
        {"USER_ID": "u1", "ITEM_ID": "b", "TIMESTAMP": 3 * DAY},
        {"USER_ID": "u2", "ITEM_ID": "a", "TIMESTAMP": 3 * DAY},
    ]
    return from_rows(rows)


def test_popularity_halves_per_half_life_back_from_the_newest_event() -> None:
    weights = popularity(data(), ["a", "b", "new"], half_life_seconds=7 * DAY)
    # a: one event at the newest time (1) and one 7 days older (0.5); b: one 7 days older
    np.testing.assert_allclose(weights, [1.5, 0.5, 0.0], rtol=1e-6)


def test_created_prefers_the_catalog_then_the_first_interaction() -> None:
    stamps = created(data(), ["a", "b", "c"], {"b": 123, "c": None})
    assert stamps.tolist() == [3 * DAY, 123, UNKNOWN_TIME]


def test_an_item_without_evidence_keeps_its_earlier_age_or_is_first_seen_now() -> None:
    """Without a creation time or an interaction, an item's age comes from the version
    being replaced; one that version lacked was first seen since (the newest event time);
    with no earlier version (a first FULL after a catalogue import) its age is unknown."""
    items = ["a", "kept", "unknown", "put-since"]
    earlier = {"a": 1, "kept": 5 * DAY, "unknown": UNKNOWN_TIME}
    assert created(data(), items, {}, earlier).tolist() == [
        3 * DAY,
        5 * DAY,
        UNKNOWN_TIME,
        10 * DAY,
    ]
    assert created(data(), items, {}, None).tolist() == [3 * DAY] + [UNKNOWN_TIME] * 3


@pytest.mark.parametrize("half_life", [DAY, 30 * DAY])
def test_popularity_never_exceeds_the_raw_count(half_life: float) -> None:
    weights = popularity(data(), ["a", "b"], half_life)
    assert weights[0] <= 2 and weights[1] <= 1 and (weights > 0).all()


def test_popularity_by_context_counts_per_value_in_the_models_vocabulary() -> None:
    rows = [
        {"USER_ID": "u1", "ITEM_ID": "a", "TIMESTAMP": 10, "DEVICE": "tv"},
        {"USER_ID": "u1", "ITEM_ID": "b", "TIMESTAMP": 10, "DEVICE": "phone"},
        {"USER_ID": "u2", "ITEM_ID": "a", "TIMESTAMP": 10, "DEVICE": "tv"},
        {"USER_ID": "u2", "ITEM_ID": "a", "TIMESTAMP": 10},
    ]
    data = from_rows(rows, ["DEVICE"])
    # the model knows the values in another order, and one the data never had
    found = by_context(data, ["b", "a"], {"DEVICE": ["", "phone", "web", "tv"]})
    matrix = found["item_popularity_DEVICE"]
    assert matrix.shape == (2, 4)
    np.testing.assert_array_equal(matrix, [[0, 1, 0, 0], [0, 0, 0, 2]])
