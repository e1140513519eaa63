"""The batched ranking (batched.py) against the per-user path it replaces for lists: the
same items and scores without exploration, the same scores and exploration rules with it,
and users it cannot rank (filters, no history, short candidates) left to the per-user path
in the same batch."""

from __future__ import annotations

import numpy as np
import pytest

from connector.model.history import HistoryEntry
from connector.serving import batched, candidates
from connector.serving.current_model import ServingModel
from connector.serving.ranking import Exploration, ListAsk, cold_items
from connector.serving.recommend import recommend_many
from tests.unit.test_candidates import ITEMS, artifacts


@pytest.fixture(scope="module")
def indexed() -> ServingModel:
    return ServingModel.from_artifacts("v1", artifacts(), index_min_items=ITEMS)


def users(count: int, seed: int) -> list[list[HistoryEntry]]:
    """Histories of 3-40 events, some with impressions (ignored-impression penalty)."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        events = []
        for n in range(int(rng.integers(3, 40))):
            shown = tuple(f"i{int(c)}" for c in rng.integers(0, ITEMS, 8)) if n % 4 == 0 else ()
            item = f"i{int(rng.integers(0, ITEMS))}"
            events.append(HistoryEntry(item, "click", impression=shown))
        result.append(events)
    return result


def per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make recommend_indexed rank every user alone, as before batching."""
    monkeypatch.setattr(candidates, "_batched", lambda *args: {})


def both(
    indexed: ServingModel,
    histories: list[list[HistoryEntry]],
    exploration: Exploration,
    monkeypatch: pytest.MonkeyPatch,
    **options: object,
) -> tuple[list, list]:
    fast = recommend_many(indexed, histories, 30, exploration, np.random.default_rng(0), **options)
    with monkeypatch.context() as patch:
        per_user(patch)
        alone = recommend_many(
            indexed, histories, 30, exploration, np.random.default_rng(0), **options
        )
    return fast, alone


def test_without_exploration_batched_lists_equal_the_per_user_ones(indexed, monkeypatch) -> None:
    histories = users(40, seed=1)
    fast, alone = both(indexed, histories, Exploration(weight=0.0), monkeypatch)
    for a, b in zip(fast, alone, strict=True):
        assert a.columns.tolist() == b.columns.tolist()
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4)
        assert not a.explored.any()
        assert (indexed.popularity[a.columns] > 0).all()  # weight 0: no item without data


def test_with_exploration_the_rules_and_scores_match_the_per_user_path(
    indexed, monkeypatch
) -> None:
    histories = users(40, seed=2)
    cold = cold_items(indexed, Exploration())
    fast, alone = both(indexed, histories, Exploration(weight=0.3), monkeypatch)
    assert sum(int(a.explored.sum()) for a in fast) > 0
    for history, a, b in zip(histories, fast, alone, strict=True):
        assert a.explored.tolist() == b.explored.tolist() and int(a.explored.sum()) <= 9
        assert cold[a.columns[a.explored]].all()
        assert len(set(a.columns.tolist())) == 30
        assert not {f"i{c}" for c in a.columns} & {e.item for e in history}
        assert (indexed.popularity[a.columns[~a.explored]] > 0).all()
        scores_b = dict(zip(b.columns.tolist(), b.scores.tolist(), strict=True))
        pairs = zip(a.columns.tolist(), a.scores.tolist(), strict=True)
        common = [(s, scores_b[c]) for c, s in pairs if c in scores_b]
        assert len(common) >= 15  # most exploited items agree; the draws differ
        mine, theirs = zip(*common, strict=True)
        np.testing.assert_allclose(mine, theirs, rtol=1e-4)


def test_weight_one_explores_every_slot(indexed) -> None:
    cold = cold_items(indexed, Exploration())
    lists = recommend_many(indexed, users(10, 3), 20, Exploration(1.0), np.random.default_rng(0))
    for ranked in lists:
        assert ranked.explored.all() and cold[ranked.columns].all()


def test_the_ignored_impression_penalty_applies_in_a_batch(indexed) -> None:
    none = Exploration(weight=0.0)
    history = users(1, seed=4)[0]
    before = recommend_many(indexed, [history] * 3, 25, none, np.random.default_rng(0))[1]
    top = f"i{before.columns[0]}"
    shown = history + [HistoryEntry("i1", "click", impression=(top,)) for _ in range(4)]
    after = recommend_many(indexed, [history, shown, []], 25, none, np.random.default_rng(0))
    assert f"i{after[1].columns[0]}" != top
    assert after[0].columns.tolist() == before.columns.tolist()


def test_filtered_and_historyless_users_share_a_batch_with_batched_ones(
    indexed, monkeypatch
) -> None:
    histories = [*users(6, seed=5), [], []]
    allowed = np.random.default_rng(6).random(ITEMS) < 0.3

    def allowed_for(n: int) -> np.ndarray | None:
        return allowed if n % 2 else None

    fast, alone = both(
        indexed, histories, Exploration(weight=0.0), monkeypatch, allowed_for=allowed_for
    )
    for n, (a, b) in enumerate(zip(fast, alone, strict=True)):
        assert a.columns.tolist() == b.columns.tolist()
        if n % 2:
            assert allowed[a.columns].all()


def test_a_window_with_fewer_cold_items_than_slots_explores_those_there_are() -> None:
    rows, items = 3, 1000
    columns = np.tile(np.arange(200, dtype=np.int64), (rows, 1))
    none = [np.zeros(0, np.int64)] * rows
    batch = batched.Batch(
        items=items,
        indexed=900,
        candidates=columns,
        scores=np.random.default_rng(0).normal(size=(rows, 200)).astype(np.float32),
        seen=batched.Pairs.of(items, none),
        shown=batched.Pairs.of(items, none, [np.zeros(0, np.float32)] * rows),
        sample=np.zeros((rows, 16), np.float32),
    )
    cold = np.arange(900, 908, dtype=np.int64)  # 8 cold items, 30 exploration slots
    positions = np.full(items, -1, np.int64)
    positions[cold] = np.arange(8)
    window = batched.Window(
        columns=cold,
        positions=positions,
        scores=np.zeros((rows, 8), np.float32),
        unproven=np.zeros(8, bool),
        sample_outside=np.ones(16, bool),
    )
    rng = np.random.default_rng(0)
    ranked = batched.rank_batch(batch, window, ListAsk(100, Exploration(1.0), rng))
    assert all(r is not None and r.explored.sum() == 8 for r in ranked)  # all there are
    unexplored = batched.rank_batch(batch, None, ListAsk(100, Exploration(0.0), rng))
    assert all(r is not None for r in unexplored)
