"""One call that turns users' histories into their lists: user states for all of them at
once (Model.user_states), then per user the impressions penalty, the allowed items and the
ranking.

The connector's precomputed lists and GetRecommendations both come through here, so a list
looked up in Redis and one asked for over HTTP are made the same way. Below
STREAMREC_SERVING_INDEX_MIN_ITEMS items every item is scored (exact, and fast at that size);
a version with more is served with an item index and ranked from candidates
(candidates.py), under the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from connector.model.history import HistoryEntry
from connector.serving import ranking
from connector.serving.candidates import recommend_indexed
from connector.serving.current_model import ServingModel
from connector.serving.ranking import Exploration, ListAsk, Ranked

# Per user (by position in the batch): the items that may be recommended, or None for all.
AllowedFor = Callable[[int], np.ndarray | None]


def recommend_many(
    served: ServingModel,
    histories: Sequence[Sequence[HistoryEntry]],
    count: int,
    exploration: Exploration,
    rng: np.random.Generator,
    *,
    exclude_seen: bool = True,
    interacted: Sequence[Sequence[str]] | None = None,
    context: Mapping[str, str] | None = None,
    allowed_for: AllowedFor | None = None,
) -> list[Ranked]:
    """The top `count` items for each history. With `exclude_seen`, the items each user
    interacted with are left out: `interacted[n]` for user n (the connector's
    interacted-items set reaches further back than the history), else the history's items."""
    seen = _seen(histories, interacted) if exclude_seen else [[] for _ in histories]
    if served.index is not None:
        return recommend_indexed(
            served,
            histories,
            count,
            exploration,
            rng,
            seen=seen,
            context=context,
            allowed_for=allowed_for,
        )
    ask = ListAsk(count, exploration, rng)
    scores = ranking.relevance(served, histories, context)
    cold = ranking.cold_items(served, exploration)
    unproven = ranking.unproven_items(served)
    lists = []
    for index, history in enumerate(histories):
        allowed = _allowed(served, seen[index], allowed_for(index) if allowed_for else None)
        adjusted = scores[index] - ranking.IGNORED_IMPRESSION_PENALTY * ranking.ignored_impressions(
            served, history
        )
        personal = ranking.is_personal(served, history)
        lists.append(ranking.rank(adjusted, ask, allowed, cold, unproven, personal))
    return lists


def rank_items(
    served: ServingModel,
    history: Sequence[HistoryEntry],
    items: Sequence[str],
    context: Mapping[str, str] | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[Ranked, list[str]]:
    """GetPersonalizedRanking: `items` re-ranked for the user; also the ids the model does
    not know (returned last by the caller, as Personalize does with unscorable items)."""
    known = [served.columns[item] for item in items if item in served.columns]
    unknown = [item for item in items if item not in served.columns]
    columns = np.array(list(dict.fromkeys(known)), dtype=np.int64)
    if allowed is not None:
        columns = columns[allowed[columns]]
    return ranking.rank_columns(served, history, context, columns), unknown


def _seen(
    histories: Sequence[Sequence[HistoryEntry]], interacted: Sequence[Sequence[str]] | None
) -> Sequence[Sequence[str]]:
    if interacted is None:
        return [[entry.item for entry in history] for history in histories]
    if len(interacted) != len(histories):
        raise ValueError(f"{len(interacted)} interacted-item lists for {len(histories)} users")
    return interacted


def _allowed(served: ServingModel, seen: Sequence[str], allowed: np.ndarray | None) -> np.ndarray:
    mask = np.ones(len(served.model.items), dtype=bool) if allowed is None else allowed.copy()
    mask[[served.columns[item] for item in seen if item in served.columns]] = False
    return mask
