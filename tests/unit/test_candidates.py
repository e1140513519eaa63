"""Ranking from the item index against brute force: recall, exploration, exclusions,
filters, cold start and scores, on a catalogue with a known structure."""

from __future__ import annotations

import numpy as np
import pytest

from connector.model.artifacts import ModelArtifacts
from connector.model.history import HistoryEntry
from connector.model.model import Hyperparameters, Model
from connector.serving import item_index
from connector.serving.current_model import SECONDS_PER_DAY, ServingModel
from connector.serving.item_index import ItemIndex
from connector.serving.ranking import Exploration, cold_items
from connector.serving.recommend import recommend_many

ITEMS, CLUSTERS, HIDDEN = 20_000, 100, 32
NOW = 1_700_000_000


def artifacts(seed: int = 0) -> ModelArtifacts:
    """Items in CLUSTERS tight clusters (what a trained model's embeddings look like), with
    biases, skewed popularity, a tenth of the items new and without interactions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (CLUSTERS, HIDDEN))
    members = rng.integers(0, CLUSTERS, ITEMS)
    embeddings = (centres[members] + rng.normal(0, 0.3, (ITEMS, HIDDEN))) * 0.3

    def weights(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.3, shape).astype(np.float32)

    params = {
        "item_embeddings": np.vstack([np.zeros((1, HIDDEN)), embeddings]).astype(np.float32),
        "item_bias": np.concatenate([[0.0], rng.normal(0, 0.3, ITEMS)]).astype(np.float32),
        "type_embeddings": weights(2, HIDDEN),
        "gru_w": weights(HIDDEN, 3 * HIDDEN),
        "gru_u": weights(HIDDEN, 3 * HIDDEN),
        "gru_b": weights(3 * HIDDEN),
        "out_w": np.eye(HIDDEN, dtype=np.float32) * 3,
        "out_b": weights(HIDDEN),
    }
    items = [f"i{n}" for n in range(ITEMS)]
    model = Model(items, ["", "click"], {}, params, Hyperparameters(hidden_dimension=HIDDEN))
    popularity = rng.pareto(1.2, ITEMS).astype(np.float32) + 0.01
    new = rng.random(ITEMS) < 0.1
    popularity[new] = 0.0
    created = np.where(new, NOW - SECONDS_PER_DAY, NOW - 400 * SECONDS_PER_DAY)
    created[rng.random(ITEMS) < 0.2] = NOW - 2 * SECONDS_PER_DAY  # recent, some rare: cold
    meta = {"data": {"last_timestamp": NOW}}
    model.meta = meta
    return model.to_artifacts({"item_popularity": popularity, "item_created": created})


@pytest.fixture(scope="module")
def versions() -> tuple[ServingModel, ServingModel]:
    """The same version served by brute force and with the index."""
    loaded = artifacts()
    brute = ServingModel.from_artifacts("v1", loaded, index_min_items=ITEMS + 1)
    indexed = ServingModel.from_artifacts("v1", loaded, index_min_items=ITEMS)
    assert brute.index is None and indexed.index is not None
    return brute, indexed


def histories(count: int, seed: int = 1) -> list[list[HistoryEntry]]:
    rng = np.random.default_rng(seed)
    return [
        [HistoryEntry(f"i{int(n)}", "click") for n in rng.integers(0, ITEMS, 5)]
        for _ in range(count)
    ]


def exploited(ranked: object) -> set[int]:
    return set(ranked.columns[~ranked.explored].tolist())  # type: ignore[attr-defined]


def test_the_index_finds_what_brute_force_finds(versions) -> None:
    brute, indexed = versions
    users = histories(60)
    none = Exploration(weight=0.0)
    exact = recommend_many(brute, users, 25, none, np.random.default_rng(0))
    approximate = recommend_many(indexed, users, 25, none, np.random.default_rng(0))
    recall = np.mean(
        [len(exploited(a) & exploited(b)) / 25 for a, b in zip(exact, approximate, strict=True)]
    )
    assert recall >= 0.9


def test_the_index_alone_has_recall_on_random_queries() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 1, (50, 16))
    embeddings = (centres[rng.integers(0, 50, 10_000)] + rng.normal(0, 0.2, (10_000, 16))).astype(
        np.float32
    )
    bias = rng.normal(0, 0.1, 10_000).astype(np.float32)
    index = ItemIndex(embeddings, bias, np.arange(10_000))
    queries = rng.normal(0, 1, (40, 16)).astype(np.float32)
    scores, columns = index.search(queries, 25)
    truth = np.argsort(-(queries @ embeddings.T + bias), axis=1)[:, :25]
    recall = np.mean([len(set(c) & set(t)) / 25 for c, t in zip(columns, truth, strict=True)])
    assert recall >= 0.9
    exact = np.take_along_axis(queries @ embeddings.T + bias, columns, axis=1)
    np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-4)  # true scores


def test_an_index_built_in_chunks_holds_every_item_once(monkeypatch) -> None:
    monkeypatch.setattr(item_index, "ADD_ROWS", 1000)  # five chunks and a partial one
    rng = np.random.default_rng(5)
    embeddings = rng.normal(0, 1, (6000, 8)).astype(np.float32)
    bias = rng.normal(0, 0.1, 6000).astype(np.float32)
    columns = np.sort(rng.choice(6000, 5500, replace=False))
    index = ItemIndex(embeddings, bias, columns)
    queries = rng.normal(0, 1, (3, 8)).astype(np.float32)
    scores, found = index.search(queries, len(columns))  # asks for all: every cell scanned
    exact = queries @ embeddings[columns].T + bias[columns]
    for row in range(len(queries)):
        assert sorted(found[row]) == sorted(columns)
        np.testing.assert_allclose(scores[row], np.sort(exact[row])[::-1], rtol=1e-5, atol=1e-5)


def test_where_biases_dominate_the_head_of_the_index_answers_exactly() -> None:
    rng = np.random.default_rng(4)
    embeddings = rng.normal(0, 0.05, (20_000, 16)).astype(np.float32)
    bias = rng.normal(0, 1.0, 20_000).astype(np.float32)
    index = ItemIndex(embeddings, bias, np.arange(20_000))
    queries = rng.normal(0, 0.1, (30, 16)).astype(np.float32)
    scores, columns = index.search(queries, 100)
    exact = queries @ embeddings.T + bias
    truth = np.argsort(-exact, axis=1)[:, :100]
    assert (columns == truth).all()  # every query: the bound held, the answer is exact
    np.testing.assert_allclose(scores, np.take_along_axis(exact, truth, axis=1), rtol=1e-5)
    far = rng.normal(0, 30.0, (5, 16)).astype(np.float32)  # the bound fails: the cells answer
    _, found = index.search(np.vstack([queries[:3], far]), 100)
    assert (found[:3] == truth[:3]).all() and (found[3:] >= 0).all()


def test_exploration_semantics_hold_with_the_index(versions) -> None:
    _, indexed = versions
    cold = cold_items(indexed, Exploration())
    rng = np.random.default_rng(2)
    users = histories(10)
    for ranked in recommend_many(indexed, users, 20, Exploration(weight=0.0), rng):
        assert not ranked.explored.any()  # (a rare item with data may still rank on merit)
        assert (indexed.popularity[ranked.columns] > 0).all()  # no item without data
    for ranked in recommend_many(indexed, users, 20, Exploration(weight=1.0), rng):
        assert cold[ranked.columns].all() and ranked.explored.all()
    for ranked in recommend_many(indexed, users, 20, Exploration(weight=0.3), rng):
        assert int(ranked.explored.sum()) <= 6 and cold[ranked.columns[ranked.explored]].all()


def test_seen_items_and_filters_are_respected_and_lists_filled(versions) -> None:
    brute, indexed = versions
    users = histories(20, seed=4)
    rng = np.random.default_rng(5)
    for share in (0.3, 0.05, 0.001):  # more candidates, then exactly over the allowed items
        allowed = np.random.default_rng(6).random(ITEMS) < share
        lists = recommend_many(
            indexed, users, 25, Exploration(), rng, allowed_for=lambda _, a=allowed: a
        )
        exact = recommend_many(
            brute, users, 25, Exploration(), rng, allowed_for=lambda _, a=allowed: a
        )
        # the index path explores a window of the cold items, so at most as many pass
        explored = sum(int(r.explored.sum()) for r in lists)
        assert 0 < explored <= sum(int(f.explored.sum()) for f in exact)
        for history, ranked, full in zip(users, lists, exact, strict=True):
            assert allowed[ranked.columns].all()
            assert not {f"i{c}" for c in ranked.columns} & {e.item for e in history}
            assert len(set(ranked.columns.tolist())) == len(ranked.columns) == len(full.columns)


def test_scores_are_close_to_the_exact_softmax(versions) -> None:
    brute, indexed = versions
    users = histories(10, seed=7)
    none = Exploration(weight=0.0)
    exact = recommend_many(brute, users, 10, none, np.random.default_rng(0))
    approximate = recommend_many(indexed, users, 10, none, np.random.default_rng(0))
    for a, b in zip(exact, approximate, strict=True):
        assert (np.diff(b.scores) <= 0).all() and 0 < b.scores.sum() <= 1
        common = [c for c in a.columns if c in set(b.columns)]
        ratio = [
            b.scores[list(b.columns).index(c)] / a.scores[list(a.columns).index(c)] for c in common
        ]
        assert np.allclose(ratio, 1.0, rtol=0.25)


def test_a_user_without_history_gets_the_popular_items(versions) -> None:
    brute, indexed = versions
    none = Exploration(weight=0.0)
    exact = recommend_many(brute, [[]], 25, none, np.random.default_rng(0))[0]
    approximate = recommend_many(indexed, [[]], 25, none, np.random.default_rng(0))[0]
    assert approximate.columns.tolist() == exact.columns.tolist()


def test_ignored_impressions_push_an_item_down_with_the_index(versions) -> None:
    _, indexed = versions
    history = histories(1, seed=8)[0]
    none = Exploration(weight=0.0)
    before = recommend_many(indexed, [history], 25, none, np.random.default_rng(0))[0]
    top = f"i{before.columns[0]}"
    shown = history + [HistoryEntry("i1", "click", impression=(top,)) for _ in range(4)]
    after = recommend_many(indexed, [shown], 25, none, np.random.default_rng(0))[0]
    assert f"i{after.columns[0]}" != top
