"""Leave-last-out split, full-ranking evaluation and top-k selection on tiny hand-made data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from connector.model.history import HistoryEntry
from worker.data.interactions import from_rows
from worker.evaluation.holdout import Holdout, evaluate, split_last
from worker.evaluation.recommender import NO_ITEM, top_k


def row(user: str, item: str, ts: int, event_type: str = "click") -> dict[str, object]:
    return {"USER_ID": user, "ITEM_ID": item, "TIMESTAMP": ts, "EVENT_TYPE": event_type}


ROWS = [
    row("u1", "a", 30, "buy"),
    row("u1", "b", 10),
    row("u2", "c", 5),
    row("u1", "c", 20),
    row("u2", "a", 7),
    row("u2", "b", 7),  # same timestamp: arrival order decides, so b is u2's last
    row("u3", "d", 1),  # only one interaction: not evaluated, kept for training
]


class ScriptedModel:
    """A Recommender whose scores are fixed per user (looked up by the first history item)."""

    def __init__(self, items: list[str], scores: dict[str, list[float]]) -> None:
        self.items = items
        self.scores = scores
        self.batch_sizes: list[int] = []

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        self.batch_sizes.append(len(histories))
        return np.array([self.scores[h[0].item] for h in histories], dtype=np.float32)


def holdout(first: str, target: str, *more: str) -> Holdout:
    items = (first, *more)
    return Holdout(user=first, history=[HistoryEntry(item) for item in items], target=target)


def test_split_holds_out_the_latest_interaction_of_each_user() -> None:
    train, holdouts = split_last(from_rows(ROWS))
    assert [(h.user, h.target) for h in holdouts] == [("u1", "a"), ("u2", "b")]
    assert [entry.item for entry in holdouts[0].history] == ["b", "c"]
    assert [entry.item for entry in holdouts[1].history] == ["c", "a"]


def test_split_keeps_everything_else_for_training() -> None:
    data = from_rows(ROWS)
    train, _ = split_last(data)
    pairs = {(train.users[u], train.items[i]) for u, i in zip(train.user, train.item, strict=True)}
    assert pairs == {("u1", "b"), ("u1", "c"), ("u2", "c"), ("u2", "a"), ("u3", "d")}
    assert train.items == data.items  # codes stay valid against the full vocabulary


def test_holdout_history_carries_event_types_and_timestamps() -> None:
    _, holdouts = split_last(from_rows(ROWS))
    assert holdouts[0].history == [
        HistoryEntry("b", "click", 10, {}),
        HistoryEntry("c", "click", 20, {}),
    ]


def test_seen_items_are_excluded_from_the_ranking() -> None:
    # The model likes "a" most, but the user has seen it; the target "c" is next.
    model = ScriptedModel(["a", "b", "c", "d"], {"a": [9.0, 1.0, 5.0, 2.0]})
    metrics = evaluate(model, [holdout("a", "c")])
    assert metrics["hr@10"] == 1.0
    assert metrics["ndcg@10"] == pytest.approx(1.0)
    assert metrics["coverage"] == pytest.approx(3 / 4)  # everything but the seen "a"


def test_rank_of_the_target_sets_the_scores() -> None:
    scores = [0.0] * 20
    scores[5], scores[6], scores[7] = 3.0, 2.0, 1.0  # target 7 is third
    model = ScriptedModel([str(n) for n in range(20)], {"0": scores})
    metrics = evaluate(model, [holdout("0", "7")])
    assert metrics["mrr@25"] == pytest.approx(1 / 3)
    assert metrics["ndcg@10"] == pytest.approx(0.5)  # 1 / log2(3 + 1)
    assert metrics["precision@5"] == pytest.approx(1 / 5)


def test_target_the_model_does_not_know_is_a_miss() -> None:
    model = ScriptedModel(["a", "b"], {"a": [0.0, 1.0]})
    metrics = evaluate(model, [holdout("a", "b"), holdout("a", "zzz")])
    assert metrics["hr@10"] == pytest.approx(0.5)
    assert metrics["mrr@25"] == pytest.approx(0.5)


def test_scores_are_computed_in_batches_with_the_same_result() -> None:
    scores = {"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]}
    holdouts = [holdout("a", "b"), holdout("b", "c"), holdout("a", "c")]
    one_by_one = ScriptedModel(["a", "b", "c"], scores)
    together = ScriptedModel(["a", "b", "c"], scores)
    assert evaluate(one_by_one, holdouts, batch_size=1) == evaluate(together, holdouts)
    assert one_by_one.batch_sizes == [1, 1, 1]
    assert together.batch_sizes == [3]


def test_scores_of_the_wrong_shape_are_refused() -> None:
    model = ScriptedModel(["a", "b", "c"], {"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="shape"):
        evaluate(model, [holdout("a", "b")])


def test_nothing_to_evaluate_is_refused() -> None:
    with pytest.raises(ValueError, match="no users"):
        evaluate(ScriptedModel(["a"], {}), [])


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]


def test_top_k_excludes_columns_per_row() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    ranked = top_k(scores, 2, exclude=[np.array([1]), np.array([0, 2])])
    assert ranked.tolist() == [[3, 2], [1, 3]]


def test_top_k_pads_when_fewer_items_are_eligible() -> None:
    scores = np.array([[1.0, np.nan, 3.0]])
    ranked = top_k(scores, 5, exclude=[np.array([2])])
    assert ranked.tolist() == [[0, NO_ITEM, NO_ITEM]]


def test_top_k_does_not_modify_the_scores() -> None:
    scores = np.array([[1.0, 2.0]], dtype=np.float32)
    top_k(scores, 1, exclude=[np.array([1])])
    assert scores.tolist() == [[1.0, 2.0]]
