"""Answers read from a precomputed list: the prefix, and the allowed entries under a filter."""

from __future__ import annotations

import numpy as np
import pytest

from connector.serving import from_list
from connector.serving.ranking import interleave


def entries(scores: list[float], explored: list[int]) -> from_list.ListEntries:
    flags = np.zeros(len(scores), bool)
    flags[explored] = True
    return from_list.ListEntries(np.array(scores, np.float64), flags)


def test_without_a_filter_the_answer_is_the_stored_prefix() -> None:
    listed = entries([0.4, 0.2, 0.1, 0.05], explored=[1])
    answer = from_list.first(listed, 3)
    assert answer is not None
    assert answer.positions.tolist() == [0, 1, 2]
    assert answer.scores.tolist() == [0.4, 0.2, 0.1]
    assert answer.explored.tolist() == [False, True, False]
    assert from_list.first(listed, 5) is None  # shorter than asked: ranked instead


def test_a_filter_keeps_allowed_entries_in_order_and_the_slots_ranking_gives() -> None:
    # 6 exploited entries (0, 1, 3, 4, 6, 7) and 2 explored ones (2, 5); weight 0.5 of 4
    listed = entries([0.3, 0.2, 0.01, 0.1, 0.05, 0.01, 0.04, 0.03], explored=[2, 5])
    allowed = np.array([False, True, True, True, False, True, True, True])
    answer = from_list.filtered(listed, 4, 0.5, allowed, rest_share=0.0)
    assert answer is not None
    exploit, explore = np.array([1, 3]), np.array([2, 5])
    assert answer.positions.tolist() == interleave(exploit, explore, 4)[0].tolist()
    assert sorted(answer.positions[answer.explored].tolist()) == [2, 5]
    # renormalised over the allowed entries: nothing lies beyond the list here
    listed_allowed = 0.2 + 0.01 + 0.1 + 0.01 + 0.04 + 0.03
    assert answer.scores.tolist() == pytest.approx(
        (listed.scores[answer.positions] / listed_allowed).tolist()
    )


def test_the_probability_beyond_the_list_counts_by_the_share_the_filter_allows() -> None:
    listed = entries([0.4, 0.2], explored=[])  # 0.4 of the probability lies beyond the list
    allowed = np.array([True, False])
    answer = from_list.filtered(listed, 1, 0.0, allowed, rest_share=0.25)
    assert answer is not None
    assert answer.scores.tolist() == pytest.approx([0.4 / (0.4 + 0.4 * 0.25)])


def test_too_few_allowed_exploited_entries_means_no_answer_from_the_list() -> None:
    listed = entries([0.3, 0.2, 0.1, 0.05], explored=[3])
    few_exploited = np.array([True, False, False, True])
    assert from_list.filtered(listed, 3, 0.34, few_exploited, 0.5) is None
    no_explored = np.array([True, True, True, False])  # explores fewer, as ranking would
    answer = from_list.filtered(listed, 3, 0.34, no_explored, 0.5)
    assert answer is not None and answer.positions.tolist() == [0, 1, 2]
    assert not answer.explored.any()
    assert from_list.filtered(listed, 3, 0.0, no_explored, 0.5) is not None  # weight 0
