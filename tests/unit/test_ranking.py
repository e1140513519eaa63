"""Ranking for serving: exploration, impressions, cold start with context, re-ranking."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest

from connector.model.history import HistoryEntry
from connector.model.model import Hyperparameters, Model
from connector.serving.current_model import SECONDS_PER_DAY, ServingModel
from connector.serving.ranking import (
    Exploration,
    ListAsk,
    choose,
    cold_items,
    cold_start_scores,
    exploration_floor,
    explored_positions,
    interleave,
    rank,
)
from connector.serving.recommend import rank_items, recommend_many

ITEMS = [f"i{n}" for n in range(40)]
NOW = 1_700_000_000


def served(seed: int = 0) -> ServingModel:
    """A random model over 40 items: i0-i19 popular and old, i20-i39 new, without
    interactions yet."""
    rng = np.random.default_rng(seed)
    hidden = 32

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.3, shape).astype(np.float32)

    params = {
        "item_embeddings": normal(len(ITEMS) + 1, hidden),
        "item_bias": normal(len(ITEMS) + 1),
        "type_embeddings": normal(2, hidden),
        "context_DEVICE": normal(3, hidden),
        "gru_w": normal(hidden, 3 * hidden),
        "gru_u": normal(hidden, 3 * hidden),
        "gru_b": normal(3 * hidden),
        "out_w": normal(hidden, hidden),
        "out_b": normal(hidden),
    }
    model = Model(ITEMS, ["", "click"], {"DEVICE": ["", "tv", "phone"]}, params, Hyperparameters())
    popularity = np.array([100.0] * 20 + [0.0] * 20, np.float32)
    created = np.array([NOW - 400 * SECONDS_PER_DAY] * 20 + [NOW - SECONDS_PER_DAY] * 20)
    by_device = np.zeros((40, 3), np.float32)
    by_device[5, 1] = 50.0  # i5 is what people watch on TVs
    return ServingModel("v1", model, popularity, created, {"DEVICE": by_device}, NOW)


HISTORY = [HistoryEntry("i1", "click"), HistoryEntry("i2", "click")]


def test_weight_zero_recommends_no_cold_items_and_weight_one_mostly_cold() -> None:
    model = served()
    cold = cold_items(model, Exploration())
    assert cold.tolist() == [False] * 20 + [True] * 20
    rng = np.random.default_rng(1)
    none = recommend_many(model, [HISTORY], 10, Exploration(weight=0.0), rng)[0]
    assert not cold[none.columns].any() and not none.explored.any()
    full = recommend_many(model, [HISTORY], 10, Exploration(weight=1.0), rng)[0]
    assert cold[full.columns].all() and full.explored.all()
    some = recommend_many(model, [HISTORY], 10, Exploration(weight=0.3), rng)[0]
    assert int(cold[some.columns].sum()) == int(some.explored.sum()) <= 3


def gate_scores() -> np.ndarray:
    """Items 0-19 exploitable, scored 20 down to 1 (best 20, 10th best 11); the cold items
    20-39 far below the user's top but for item 20, which scores 10."""
    scores = np.full(40, -100.0, np.float32)
    scores[:20] = np.arange(20, 0, -1)
    scores[20] = 10.0
    return scores


def test_a_new_item_is_explored_only_when_relevant_enough_for_the_weight() -> None:
    cold = np.arange(40) >= 20
    allowed = np.ones(40, bool)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        default = rank(gate_scores(), ListAsk(10, Exploration(0.3), rng), allowed, cold)
        assert default.columns[default.explored].tolist() == [20]  # the others are too far
        assert np.flatnonzero(default.explored).tolist() == [3]  # the first stretch's end
        everything = rank(gate_scores(), ListAsk(10, Exploration(1.0), rng), allowed, cold)
        assert everything.explored.all() and cold[everything.columns].all()
        ask = ListAsk(10, Exploration(0.3), rng)
        popularity = rank(gate_scores(), ask, allowed, cold, gated=False)
        assert int(popularity.explored.sum()) == 3  # no history: the weight alone decides


def test_the_floor_falls_as_the_weight_grows() -> None:
    exploitable = gate_scores()[:20]
    floors = [exploration_floor(exploitable, weight) for weight in (0.0, 0.1, 0.3, 0.6, 0.9)]
    assert floors[0] == 11.0  # weight 0: nothing below the 10th best item
    assert all(a > b for a, b in pairwise(floors))
    assert exploration_floor(exploitable, 1.0) == -np.inf


def test_age_cut_off_keeps_old_rare_items_out_of_exploration() -> None:
    model = served()
    assert not cold_items(model, Exploration(item_age_cut_off_days=0.5)).any()


def test_an_item_without_creation_or_first_seen_time_is_never_explored() -> None:
    """Rare items whose age nobody knows (a catalogue imported without creation times and
    never interacted with) are not new: exploration leaves them out even at weight 1."""
    model = served()
    unknown = replace(model, created=np.where(np.arange(40) < 20, model.created, -1), derived={})
    assert not cold_items(unknown, Exploration()).any()
    ranked = recommend_many(
        unknown, [HISTORY], 10, Exploration(weight=1.0), np.random.default_rng(0)
    )
    assert not ranked[0].explored.any()
    assert not (np.asarray(ranked[0].columns) >= 20).any()  # unproven items stay out too


@pytest.mark.parametrize("weight", [0.3, 1.0])
def test_when_no_item_is_new_the_default_answer_is_the_answer_with_weight_zero(weight) -> None:
    model = served()
    ages = np.where(np.arange(40) < 30, NOW - 400 * SECONDS_PER_DAY, -1)  # old or unknown
    old = replace(model, created=ages, derived={})
    histories = [HISTORY, [HistoryEntry("i7", "click")], []]
    default = recommend_many(old, histories, 10, Exploration(weight), np.random.default_rng(1))
    plain = recommend_many(old, histories, 10, Exploration(0.0), np.random.default_rng(2))
    for got, expected in zip(default, plain, strict=True):
        assert got.columns.tolist() == expected.columns.tolist()
        assert np.allclose(got.scores, expected.scores) and not got.explored.any()


def test_explored_items_take_the_last_slot_of_each_equal_stretch() -> None:
    columns, explored = interleave(np.arange(100, 107), np.arange(3), 10)
    assert np.flatnonzero(explored).tolist() == [3, 6, 9]
    assert columns.tolist() == [100, 101, 102, 0, 103, 104, 1, 105, 106, 2]
    _, stored = interleave(np.arange(100, 170), np.arange(30), 100)
    assert int(stored[:10].sum()) == 3  # a prefix of a stored list explores as much
    _, fewer = interleave(np.arange(100, 198), np.arange(2), 100, slots=30)
    _, short = interleave(np.arange(100, 108), np.arange(2), 10, slots=3)
    assert np.flatnonzero(fewer).tolist() == np.flatnonzero(short).tolist() == [3, 6]


def test_short_lists_still_place_every_explored_item_once() -> None:
    for total in range(1, 12):
        for explored in range(0, total + 1):
            for slots in (explored, 3, 10):
                positions = explored_positions(total, explored, max(slots, explored))
                assert int(positions.sum()) == explored, (total, explored, slots)


def test_a_batch_ranks_each_row_as_that_user_alone() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 40)).astype(np.float32)
    scores[1, 5:] = -np.inf  # one user with only five items allowed: a short list
    scores[2, ::2] = -np.inf
    cold = np.arange(40) >= 30
    unproven = np.arange(40) >= 36
    batch = choose(scores, cold, unproven, ListAsk(10, Exploration(0.0), rng))
    assert batch.lengths.tolist() == [10, 5, 10, 10, 10, 10]
    for row in range(6):
        alone = choose(scores[row : row + 1], cold, unproven, ListAsk(10, Exploration(0.0), rng))
        assert batch.row(row)[0].tolist() == alone.row(0)[0].tolist()
        assert not set(batch.row(row)[0].tolist()) & set(range(36, 40))
    explored = choose(scores, cold, unproven, ListAsk(10, Exploration(1.0), rng))
    for row in range(6):
        columns, flags = explored.row(row)
        assert set(columns[flags].tolist()) <= set(range(30, 40))
        assert np.isfinite(scores[row, columns]).all() and len(set(columns.tolist())) == len(
            columns
        )


def test_lists_exclude_seen_items_and_scores_are_probabilities() -> None:
    ranked = recommend_many(
        served(), [HISTORY], 15, Exploration(weight=0.0), np.random.default_rng(0)
    )[0]
    names = [ITEMS[c] for c in ranked.columns]
    assert "i1" not in names and "i2" not in names and len(set(names)) == 15
    assert (np.diff(ranked.scores) <= 0).all() and 0 < ranked.scores.sum() <= 1


def test_ignored_impressions_push_an_item_down() -> None:
    model = served()
    rng = np.random.default_rng(0)
    before = recommend_many(model, [HISTORY], 40, Exploration(weight=0.0), rng)[0]
    top = ITEMS[before.columns[0]]
    shown = [*HISTORY] + [HistoryEntry("i3", "click", impression=(top, "i3")) for _ in range(3)]
    after = recommend_many(model, [shown], 40, Exploration(weight=0.0), rng)[0]
    assert [ITEMS[c] for c in after.columns].index(top) > 0


def test_a_user_without_history_gets_popular_items_and_context_counts() -> None:
    model = served()
    plain = cold_start_scores(model, None)
    assert plain[:20].min() > plain[20:].max()  # popular first
    on_tv = cold_start_scores(model, {"DEVICE": "tv"})
    assert int(np.argmax(on_tv)) == 5
    unknown = cold_start_scores(model, {"DEVICE": "fridge"})
    np.testing.assert_allclose(unknown, plain)


def test_personalized_ranking_orders_the_given_items_and_reports_unknown_ones() -> None:
    model = served()
    ranked, unknown = rank_items(model, HISTORY, ["i7", "nope", "i3", "i7", "i30"])
    assert unknown == ["nope"]
    assert sorted(ITEMS[c] for c in ranked.columns) == ["i3", "i30", "i7"]
    assert (np.diff(ranked.scores) <= 0).all()
    allowed = np.ones(40, dtype=bool)
    allowed[3] = False
    filtered, _ = rank_items(model, HISTORY, ["i7", "i3"], allowed=allowed)
    assert [ITEMS[c] for c in filtered.columns] == ["i7"]


def test_rank_fills_what_it_can_when_few_items_are_allowed() -> None:
    allowed = np.zeros(40, dtype=bool)
    allowed[[4, 9]] = True
    ask = ListAsk(10, Exploration(), np.random.default_rng(0))
    ranked = rank(np.arange(40, dtype=np.float32), ask, allowed, np.zeros(40, bool))
    assert ranked.columns.tolist() == [9, 4]
    assert ranked.scores.sum() == pytest.approx(1.0)


def test_an_outlier_cold_item_does_not_take_every_exploration_slot() -> None:
    scores = np.zeros(40, np.float32)
    scores[20:] = np.random.default_rng(2).normal(0, 1, 20)
    scores[25] = 50.0  # a centroid-like new item, far more "relevant" than the rest
    cold = np.array([False] * 20 + [True] * 20)
    rng = np.random.default_rng(3)
    picks = [
        rank(scores, ListAsk(1, Exploration(weight=1.0), rng), np.ones(40, bool), cold).columns[0]
        for _ in range(300)
    ]
    share = picks.count(25) / len(picks)
    assert 0.05 < share < 0.6  # favoured, not always chosen
    assert len(set(picks)) > 10  # exploration still spreads over the cold items


def test_cold_items_are_computed_once_per_version_and_setting() -> None:
    model = served()
    first = cold_items(model, Exploration())
    assert cold_items(model, Exploration(weight=0.9)) is first  # weight does not change it
    assert cold_items(model, Exploration(item_age_cut_off_days=0.5)) is not first
