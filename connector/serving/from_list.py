"""Answering GetRecommendations from a subject's precomputed list instead of ranking again.

The connector ranks every list with recommend_many as events arrive; when a list is current
(the API checks its terms), the request's answer can be read from it:

- without a filter, its first numResults entries, as stored;
- with a filter, the entries the filter allows, in list order: the first (up to
  round(weight × numResults)) explored ones and enough exploited ones to fill the answer,
  placed as ranking.rank places them. Exploited entries are the catalogue's best items in
  order, so the allowed ones among them are the best allowed items; explored entries are a
  draw without replacement (Gumbel top-k) from the cold items that passed the user's
  exploration floor, and the allowed ones among them, in order, are a draw of the same kind
  from the allowed ones. When the list holds too few allowed exploited entries, there is no
  answer from it.
  Scores are the stored probabilities renormalised over the allowed items: exact for the
  listed ones, and the probability of the items beyond the list (what the stored scores
  leave of 1) counted in proportion to how many of them the filter allows.

Two differences from ranking anew: a cold item drawn for exploration when the list was
computed, but beyond the answer's exploration slots, does not move up to an exploitation
slot; and the exploration floor is the unfiltered list's (ranking.exploration_floor), where
ranking anew would take it from the best allowed items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connector.serving.ranking import exploration_slots, interleave


@dataclass(frozen=True)
class ListEntries:
    """A stored list as arrays: probabilities and which entries exploration placed."""

    scores: np.ndarray  # float64, one per entry, best first
    explored: np.ndarray  # bool, one per entry


@dataclass(frozen=True)
class FromList:
    """An answer: positions into the stored list, in answer order, with their scores."""

    positions: np.ndarray
    scores: np.ndarray
    explored: np.ndarray


def first(entries: ListEntries, count: int) -> FromList | None:
    """The first `count` entries, or None when the list is shorter."""
    if len(entries.scores) < count:
        return None
    positions = np.arange(count)
    return FromList(positions, entries.scores[:count], entries.explored[:count])


def filtered(
    entries: ListEntries,
    count: int,
    exploration_weight: float,
    allowed: np.ndarray,
    rest_share: float,
) -> FromList | None:
    """The answer under a filter that allows the entries `allowed` (bool per entry) and the
    share `rest_share` (0-1) of the items the list does not hold; None when the list holds
    too few allowed entries to fill `count` slots as ranking would."""
    slots = exploration_slots(exploration_weight, count)
    explore = np.flatnonzero(allowed & entries.explored)[:slots]
    exploit = np.flatnonzero(allowed & ~entries.explored)[: count - len(explore)]
    if len(exploit) < count - len(explore):
        return None
    positions, explored = interleave(exploit, explore, count, slots)
    beyond = max(0.0, 1.0 - float(entries.scores.sum()))
    mass = float(entries.scores[allowed].sum()) + beyond * rest_share
    if mass <= 0.0:
        return None
    return FromList(positions, entries.scores[positions] / mass, explored)
