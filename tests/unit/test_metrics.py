"""Personalize's solution metrics on small cases computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from worker.evaluation.metrics import METRIC_NAMES, MetricAccumulator, ranking_metrics


def gain(rank: int) -> float:
    """The DCG gain of a hit at 1-based `rank`."""
    return 1 / math.log2(rank + 1)


def ranked_list(*head: int, catalog: int = 100) -> np.ndarray:
    """A 25-long ranked list that starts with `head` and continues with unused items."""
    rest = [item for item in range(catalog) if item not in head]
    return np.array([*head, *rest][:25])


def test_single_hit_at_rank_two_and_a_miss() -> None:
    ranked = np.stack([ranked_list(3, 7, 1, 2), ranked_list(0, 1, 2)])
    metrics = ranking_metrics(ranked, [np.array([7]), np.array([99])], catalog_size=100)
    # user 1: hit at rank 2; user 2: relevant item 99 is not in the top 25.
    assert metrics["mrr@25"] == pytest.approx(0.5 / 2)
    for k in (5, 10, 25):
        assert metrics[f"ndcg@{k}"] == pytest.approx(0.6309298 / 2)
        assert metrics[f"precision@{k}"] == pytest.approx(1 / k / 2)
    assert metrics["hr@10"] == pytest.approx(0.5)


def test_several_relevant_items_use_the_ideal_of_all_of_them() -> None:
    # Relevant items 0, 2 and 11 sit at ranks 1, 3 and 12.
    metrics = ranking_metrics(ranked_list(*range(25))[None, :], [np.array([0, 2, 11])], 100)
    ideal = gain(1) + gain(2) + gain(3)
    assert ideal == pytest.approx(2.1309298)
    assert metrics["ndcg@5"] == pytest.approx((gain(1) + gain(3)) / ideal)
    assert metrics["ndcg@5"] == pytest.approx(0.7039180)
    assert metrics["ndcg@10"] == pytest.approx(metrics["ndcg@5"])
    assert metrics["ndcg@25"] == pytest.approx((gain(1) + gain(3) + gain(12)) / ideal)
    assert metrics["precision@5"] == pytest.approx(2 / 5)
    assert metrics["precision@10"] == pytest.approx(2 / 10)
    assert metrics["precision@25"] == pytest.approx(3 / 25)
    assert metrics["mrr@25"] == 1.0


def test_ideal_dcg_is_cut_at_k_when_more_items_are_relevant() -> None:
    # Seven relevant items, the first five ranks are all hits.
    relevant = [np.array([0, 1, 2, 3, 4, 50, 60])]
    metrics = ranking_metrics(ranked_list(*range(25))[None, :], relevant, 100)
    assert metrics["ndcg@5"] == pytest.approx(1.0)
    five = sum(gain(rank) for rank in range(1, 6))
    assert metrics["ndcg@10"] == pytest.approx(five / sum(gain(rank) for rank in range(1, 8)))
    assert metrics["ndcg@10"] == pytest.approx(0.8104618)
    assert metrics["precision@5"] == 1.0


def test_reciprocal_rank_takes_the_first_hit_only() -> None:
    metrics = ranking_metrics(ranked_list(9, 8, 7, 6)[None, :], [np.array([7, 6])], 100)
    assert metrics["mrr@25"] == pytest.approx(1 / 3)


def test_hit_rate_looks_at_the_top_ten_only() -> None:
    ranked = np.stack([ranked_list(*range(25)), ranked_list(*range(25))])
    metrics = ranking_metrics(ranked, [np.array([9]), np.array([10])], 100)
    assert metrics["hr@10"] == pytest.approx(0.5)  # rank 10 counts, rank 11 does not


def test_coverage_is_the_share_of_catalog_items_in_any_top_25() -> None:
    ranked = np.stack([np.arange(25), np.arange(10, 35)])
    metrics = ranking_metrics(ranked, [np.array([0]), np.array([0])], catalog_size=100)
    assert metrics["coverage"] == pytest.approx(35 / 100)


def test_only_the_top_25_count_for_coverage() -> None:
    ranked = np.arange(50)[None, :]
    assert ranking_metrics(ranked, [np.array([0])], 100)["coverage"] == pytest.approx(0.25)


def test_short_lists_of_a_small_catalog_are_padded() -> None:
    metrics = ranking_metrics(np.array([[2, 0, 1]]), [np.array([0])], catalog_size=3)
    assert metrics["precision@25"] == pytest.approx(1 / 25)
    assert metrics["ndcg@25"] == pytest.approx(gain(2))
    assert metrics["coverage"] == 1.0


def test_relevant_item_outside_the_catalog_never_hits_an_empty_slot() -> None:
    ranked = np.array([[4, -1, -1]])
    metrics = ranking_metrics(ranked, [np.array([-1])], catalog_size=5)
    assert metrics["hr@10"] == 0.0
    assert metrics["mrr@25"] == 0.0
    assert metrics["coverage"] == pytest.approx(1 / 5)


def test_batches_accumulate_to_the_same_averages() -> None:
    rng = np.random.default_rng(3)
    ranked = np.stack([rng.permutation(60)[:25] for _ in range(8)])
    relevant = [rng.choice(60, size=rng.integers(1, 4), replace=False) for _ in range(8)]
    whole = ranking_metrics(ranked, relevant, 60)
    accumulator = MetricAccumulator(60)
    accumulator.add(ranked[:3], relevant[:3])
    accumulator.add(ranked[3:], relevant[3:])
    assert accumulator.result() == pytest.approx(whole)


def test_result_is_json_with_every_metric_name() -> None:
    metrics = ranking_metrics(np.arange(25)[None, :], [np.array([3])], 30)
    assert tuple(metrics) == METRIC_NAMES
    assert json.loads(json.dumps(metrics)) == metrics


def test_a_user_without_relevant_items_is_refused() -> None:
    with pytest.raises(ValueError, match="relevant"):
        ranking_metrics(np.arange(25)[None, :], [np.array([], dtype=np.int64)], 30)


def test_no_users_is_refused_rather_than_nan() -> None:
    with pytest.raises(ValueError, match="no users"):
        MetricAccumulator(10).result()
