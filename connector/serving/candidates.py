"""Ranking from candidates, for versions served with an item index (large catalogues).

The brute-force path (recommend.py) scores every item for every user; this one asks the
index (item_index.py) for the best few hundred items of each user state and ranks those, with
the same rules and the same ranking.rank:

- Candidates: the index's top k, k = count + CANDIDATE_MARGIN + the user's seen and shown
  items (k grows when a filter or exclusions leave fewer than `count` of them, and a filter
  that allows few items is ranked exactly over those items instead). A user without history
  takes the version's popularity order (per context) instead of the index.
- Exploration draws from the cold items directly (ranking.cold_items), never from the
  candidates: every cold item is scored, or, in a catalogue with more than EXPLORE_POOL of
  them, a uniformly random window of EXPLORE_POOL (1,024) per request (shared by the users
  of one batch of lists, so their scores come from one matrix product; a user whose filter
  leaves too few of them gets every cold item), so weight 0 still means no cold item and
  weight 1 mostly cold ones.
- Seen-item exclusion, filters and the ignored-impression penalty apply to the candidates.
- Scores stay a softmax over every allowed item: the sum over the ranked ones is exact and
  the rest of the catalogue's share is estimated from a fixed uniform sample of
  TAIL_SAMPLE items (the items outside the candidates are the low-scoring tail, so the
  estimate moves the probabilities little).

The users of a batch with a history and no filter are ranked together in 2-D operations
(batched.py, the same rules); the others, and any the batch cannot rank as this path would
(too few usable candidates, cold or exploitable items), one at a time here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from connector.model.history import HistoryEntry
from connector.serving import batched, ranking
from connector.serving.current_model import ServingModel
from connector.serving.item_index import ItemIndex, item_vectors
from connector.serving.ranking import Exploration, Ranked

CANDIDATE_MARGIN = 50  # candidates beyond numResults and the user's excluded items
GROWTH = 1.5  # extra factor when k grows to make up for items a filter removes
EXACT_ALLOWED_BELOW = 4096  # a filter allowing fewer items is ranked exactly over them
EXPLORE_POOL = 1024  # most cold items scored per request for exploration
TAIL_SAMPLE = 1024  # items sampled per version to estimate the softmax over the rest
SEARCHES = 3  # most searches per user before ranking exactly over the allowed items
_NONE = np.zeros(0, np.float32)


@dataclass(frozen=True)
class _User:
    """One history as the candidate path reads it."""

    query: np.ndarray | None  # [state | 1] against [embedding | bias]; None: no history
    popular: np.ndarray  # cold-start scores of every item, for a user with no history
    order: np.ndarray  # indexed items by `popular`, best first (both empty with a query)
    seen: np.ndarray  # sorted columns excluded from the list
    shown: np.ndarray  # sorted columns shown and passed over
    times: np.ndarray  # how often each of `shown` was
    allowed: np.ndarray | None  # the filter's items, None for all


@dataclass(frozen=True)
class _Block:
    """Items with their [embedding | bias] rows, contiguous, for one matrix product."""

    columns: np.ndarray
    vectors: np.ndarray

    def scores(self, user: _User, part: slice = slice(None)) -> np.ndarray:
        result: np.ndarray = (
            user.popular[self.columns[part]]
            if user.query is None
            else self.vectors[part] @ user.query
        )
        return result


def recommend_indexed(
    served: ServingModel,
    histories: Sequence[Sequence[HistoryEntry]],
    count: int,
    exploration: Exploration,
    rng: np.random.Generator,
    *,
    seen: Sequence[Sequence[str]],
    context: Mapping[str, str] | None,
    allowed_for: Callable[[int], np.ndarray | None] | None,
) -> list[Ranked]:
    """recommend_many for a version with an index: the top `count` items of each history."""
    index = served.index
    if index is None:
        raise ValueError(f"model version {served.version} is served without an item index")
    users = _users(served, index, histories, seen, context, allowed_for)
    k = count + CANDIDATE_MARGIN + max(len(u.seen) + len(u.shown) for u in users)
    queries = {n: u.query for n, u in enumerate(users) if u.query is not None}
    queried = list(queries)
    stacked = np.stack(list(queries.values())) if queries else np.zeros((0, 1), np.float32)
    found = index.search(stacked[:, :-1], k) if queried else (np.zeros(0), np.zeros(0))
    ask = ranking.ListAsk(count, exploration, rng)
    shared = _shared(served, stacked, ask)
    fast = _batched(served, index, users, queried, found, shared, ask)
    row_of = {n: row for row, n in enumerate(queried)}
    lists = []
    for n, user in enumerate(users):
        ranked, row = fast.get(n), row_of.get(n)
        if ranked is None:
            first = _popular(served, user, k) if row is None else _trim(*(f[row] for f in found))
            candidates = _enough(served, index, user, first, count)
            scored = shared.row(row) if row is not None else _Scored.of(served, user, exploration)
            ranked = _rank(served, user, candidates, ask, scored)
        lists.append(ranked)
    return lists


@dataclass(frozen=True)
class _Scored:
    """One user's scores of the cold items exploration looks at (`window` of the cold
    block) and of the tail sample."""

    window: slice
    cold: np.ndarray
    sample: np.ndarray

    @classmethod
    def of(cls, served: ServingModel, user: _User, exploration: Exploration) -> _Scored:
        """For one user alone (no query, or a filter that needs every cold item)."""
        pool = _cold_block(served, exploration)
        window = slice(0, len(pool.columns))
        return cls(window, pool.scores(user, window), _sample(served).scores(user))


@dataclass(frozen=True)
class _Shared:
    """The batch's users with a query: their scores of one window of the cold block (the
    batch shares it) and of the tail sample, one matrix product each."""

    window: slice
    cold: np.ndarray  # (users, window size); no columns without exploration
    sample: np.ndarray  # (users, TAIL_SAMPLE)

    def row(self, row: int) -> _Scored:
        return _Scored(self.window, self.cold[row], self.sample[row])


def _shared(served: ServingModel, queries: np.ndarray, ask: ranking.ListAsk) -> _Shared:
    if not len(queries):
        return _Shared(slice(0, 0), np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32))
    sample = queries @ _sample(served).vectors.T
    if ask.slots <= 0:
        return _Shared(slice(0, 0), np.zeros((len(queries), 0), np.float32), sample)
    pool = _cold_block(served, ask.exploration)
    window = _window(len(pool.columns), ask.rng)
    return _Shared(window, queries @ pool.vectors[window].T, sample)


def _batched(
    served: ServingModel,
    index: ItemIndex,
    users: list[_User],
    queried: list[int],
    found: tuple[np.ndarray, np.ndarray],
    shared: _Shared,
    ask: ranking.ListAsk,
) -> dict[int, Ranked]:
    """The lists of the users with a query and no filter, ranked together (batched.py);
    a user it leaves out is ranked alone."""
    rows = [row for row, n in enumerate(queried) if users[n].allowed is None]
    if not rows:
        return {}
    chosen = [users[queried[row]] for row in rows]
    items = len(served.model.items)
    batch = batched.Batch(
        items=items,
        indexed=index.size,
        candidates=found[1][rows],
        scores=found[0][rows],
        seen=batched.Pairs.of(items, [u.seen for u in chosen]),
        shown=batched.Pairs.of(items, [u.shown for u in chosen], [u.times for u in chosen]),
        sample=shared.sample[rows],
    )
    window = _batch_window(served, ask.exploration, shared, rows) if ask.slots > 0 else None
    ranked = batched.rank_batch(batch, window, ask)
    return {queried[row]: r for row, r in zip(rows, ranked, strict=True) if r is not None}


def _batch_window(
    served: ServingModel, exploration: Exploration, shared: _Shared, rows: list[int]
) -> batched.Window:
    pool = _cold_block(served, exploration)
    window = shared.window
    columns = pool.columns[window]
    return batched.Window(
        columns=columns,
        positions=_cold_positions(served, exploration) - window.start,
        scores=shared.cold[rows],
        unproven=served.popularity[columns] <= 0,
        sample_outside=~_in_window(served, exploration, _sample(served).columns, window),
    )


def _users(
    served: ServingModel,
    index: ItemIndex,
    histories: Sequence[Sequence[HistoryEntry]],
    seen: Sequence[Sequence[str]],
    context: Mapping[str, str] | None,
    allowed_for: Callable[[int], np.ndarray | None] | None,
) -> list[_User]:
    personal = [i for i, h in enumerate(histories) if ranking.is_personal(served, h)]
    states = served.model.user_states([histories[i] for i in personal]) if personal else None
    query_of = {}
    if states is not None:
        augmented = np.hstack([states, np.ones((len(states), 1), np.float32)])
        query_of = dict(zip(personal, augmented, strict=True))
    users = []
    for n, history in enumerate(histories):
        query = query_of.get(n)
        shown = ranking.ignored_shown(served, history)
        shown_columns = np.array(sorted(shown), np.int64)
        popular, order = (
            (_NONE, _NONE) if query is not None else _cold_start(served, index, context)
        )
        users.append(
            _User(
                query=query,
                popular=popular,
                order=order,
                seen=known_columns(served, seen[n]),
                shown=shown_columns,
                times=np.array([shown[c] for c in shown_columns], np.float32),
                allowed=allowed_for(n) if allowed_for else None,
            )
        )
    return users


def known_columns(served: ServingModel, items: Sequence[str]) -> np.ndarray:
    """The model columns of those of `items` the version knows, sorted, each once."""
    return np.unique(np.array([served.columns[i] for i in items if i in served.columns], np.int64))


def _trim(scores: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    found = columns >= 0
    return columns[found], scores[found]


def _popular(served: ServingModel, user: _User, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A user without history: the k most popular indexed items (for the request context)."""
    top = user.order[:k]
    return top, user.popular[top]


def _enough(
    served: ServingModel,
    index: ItemIndex,
    user: _User,
    candidates: tuple[np.ndarray, np.ndarray],
    count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates with at least `count` the user may get, searching further (or ranking
    exactly over a filter's few items) when exclusions and the filter remove too many."""
    allowed = None if user.allowed is None else int(user.allowed.sum())
    if allowed is not None and allowed < EXACT_ALLOWED_BELOW:
        return _exact(served, index, user)
    for _ in range(SEARCHES):
        columns = candidates[0]
        usable = int(_usable(user, columns).sum())
        if usable >= count or len(columns) >= index.size:
            return candidates
        k = math.ceil(len(columns) * (count + CANDIDATE_MARGIN) / max(usable, 1) * GROWTH)
        if k > index.size // 2:
            break
        if user.query is None:
            candidates = _popular(served, user, k)
        else:
            candidates = _trim(*(row[0] for row in index.search(user.query[None, :-1], k)))
    return _exact(served, index, user)


def _exact(served: ServingModel, index: ItemIndex, user: _User) -> tuple[np.ndarray, np.ndarray]:
    """Every indexed item the filter allows, scored exactly."""
    columns = index.columns if user.allowed is None else index.columns[user.allowed[index.columns]]
    return columns, _scores_at(served, user, columns)


def _usable(user: _User, columns: np.ndarray) -> np.ndarray:
    """Which of `columns` the user may be given and were not passed over."""
    usable: np.ndarray = (
        np.ones(len(columns), bool) if user.allowed is None else user.allowed[columns]
    )
    result: np.ndarray = usable & ~_member(columns, user.seen) & ~_member(columns, user.shown)
    return result


def _member(columns: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Whether each of `columns` is in `sorted_set` (sorted, unique)."""
    if not len(sorted_set):
        return np.zeros(len(columns), bool)
    at = np.minimum(np.searchsorted(sorted_set, columns), len(sorted_set) - 1)
    result: np.ndarray = sorted_set[at] == columns
    return result


def _scores_at(served: ServingModel, user: _User, columns: np.ndarray) -> np.ndarray:
    if user.query is None:
        result: np.ndarray = user.popular[columns]
        return result
    return served.model.scores_at(user.query[:-1], columns)


def _rank(
    served: ServingModel,
    user: _User,
    candidates: tuple[np.ndarray, np.ndarray],
    ask: ranking.ListAsk,
    scored: _Scored,
) -> Ranked:
    """ranking.rank over the candidates plus the cold items exploration may draw, with the
    softmax's denominator completed by the estimate of the rest."""
    columns, scores = candidates
    exploration, slots = ask.exploration, ask.slots
    window, cold_columns, cold_scores = slice(0, 0), columns[:0], scores[:0]
    if slots > 0:
        pool = _cold_block(served, exploration)
        if _too_few(pool, user, scored.window, slots):
            scored = _Scored.of(served, user, exploration)
        window, cold_scores = scored.window, scored.cold
        in_window = _in_window(served, exploration, columns, window)
        columns, scores = columns[~in_window], scores[~in_window]
        cold_columns = pool.columns[window]
    universe = np.concatenate([columns, cold_columns])
    raw = np.concatenate([scores, cold_scores]).astype(np.float32)
    allowed = np.ones(len(universe), bool) if user.allowed is None else user.allowed[universe]
    allowed &= ~_member(universe, user.seen)
    adjusted = raw - ranking.IGNORED_IMPRESSION_PENALTY * _times(user, universe)
    cold = np.zeros(len(universe), bool)
    cold[len(columns) :] = True
    unproven = np.zeros(len(universe), bool)
    unproven[len(columns) :] = served.popularity[cold_columns] <= 0
    personal = user.query is not None
    ranked = ranking.rank(adjusted, ask, allowed, cold, unproven, personal)
    chosen = universe[ranked.columns]
    masked = np.where(allowed, adjusted, -np.inf)
    outside = _Outside(scores, window, exploration if slots > 0 else None, scored.sample)
    probabilities = _probabilities(served, user, masked, ranked.columns, outside)
    return Ranked(chosen, probabilities, ranked.explored)


def _times(user: _User, universe: np.ndarray) -> np.ndarray:
    times = np.zeros(len(universe), np.float32)
    if len(user.shown):
        hit = _member(universe, user.shown)
        times[hit] = user.times[np.searchsorted(user.shown, universe[hit])]
    return times


def _window(size: int, rng: np.random.Generator) -> slice:
    """The part of the (shuffled) cold items scored for a request or batch: all of them, or
    a random EXPLORE_POOL of them."""
    if size <= EXPLORE_POOL:
        return slice(0, size)
    start = int(rng.integers(0, size - EXPLORE_POOL + 1))
    return slice(start, start + EXPLORE_POOL)


def _too_few(pool: _Block, user: _User, window: slice, slots: int) -> bool:
    """Whether the user's filter leaves too few of the window's cold items (then every cold
    item is looked at)."""
    if user.allowed is None or window.stop - window.start >= len(pool.columns):
        return False
    return int(user.allowed[pool.columns[window]].sum()) < 2 * slots


def _in_window(
    served: ServingModel, exploration: Exploration, columns: np.ndarray, window: slice
) -> np.ndarray:
    """Which of `columns` are among the cold items scored for this request (they are ranked
    once, as cold items)."""
    position = _cold_positions(served, exploration)[columns]
    result: np.ndarray = (position >= window.start) & (position < window.stop)
    return result


@dataclass(frozen=True)
class _Outside:
    """What tells an item outside the ranked universe: scoring below every candidate and
    not among the cold items scored (when exploration scored any)."""

    candidate_scores: np.ndarray
    window: slice
    exploration: Exploration | None
    sample_scores: np.ndarray  # the user's scores of the tail sample


def _probabilities(
    served: ServingModel, user: _User, masked: np.ndarray, chosen: np.ndarray, outside: _Outside
) -> np.ndarray:
    """Softmax of the chosen among every allowed item: exact over the ranked universe, the
    rest estimated from the version's sample."""
    finite = np.isfinite(masked)
    if not finite.any() or not len(chosen):
        return np.zeros(len(chosen), np.float64)
    top = float(masked[finite].max())
    exact = float(np.exp(masked[finite] - top).sum())
    tail = _tail(served, user, outside, top, int(finite.sum()))
    result: np.ndarray = np.exp(masked[chosen] - top) / (exact + tail)
    return result


def _tail(
    served: ServingModel, user: _User, outside: _Outside, top: float, ranked_allowed: int
) -> float:
    """Estimated sum of exp(score - top) over the allowed items outside the universe: their
    number times the mean over the sampled items that are outside it too."""
    allowed = len(served.model.items) if user.allowed is None else int(user.allowed.sum())
    rest = allowed - len(user.seen) - ranked_allowed
    if rest <= 0 or not len(outside.candidate_scores):
        return 0.0
    sample = _sample(served)
    scores = outside.sample_scores
    keep = scores < float(outside.candidate_scores.min())
    if outside.exploration is not None:
        keep &= ~_in_window(served, outside.exploration, sample.columns, outside.window)
    if user.allowed is not None:
        keep &= user.allowed[sample.columns]
    if not keep.any():
        return 0.0
    return rest * float(np.exp(scores[keep] - top).mean())


# Per-version data, computed on first use and kept with the version (ServingModel.derive)


def _vectors(served: ServingModel, columns: np.ndarray) -> np.ndarray:
    params = served.model.params  # item row 0 is padding
    return item_vectors(params["item_embeddings"][1:], params["item_bias"][1:], columns)


def _cold_block(served: ServingModel, exploration: Exploration) -> _Block:
    """The cold items in a fixed random order (so a window of them is a uniform sample)."""

    def make() -> _Block:
        columns = np.flatnonzero(ranking.cold_items(served, exploration))
        np.random.default_rng(0).shuffle(columns)
        return _Block(columns, _vectors(served, columns))

    block: _Block = served.derive(("cold-block", exploration.item_age_cut_off_days), make)
    return block


def _cold_positions(served: ServingModel, exploration: Exploration) -> np.ndarray:
    """Per item, its position in the cold block's order (-1: not cold)."""

    def make() -> np.ndarray:
        positions = np.full(len(served.model.items), -1, np.int64)
        block = _cold_block(served, exploration)
        positions[block.columns] = np.arange(len(block.columns))
        return positions

    key = ("cold-positions", exploration.item_age_cut_off_days)
    result: np.ndarray = served.derive(key, make)
    return result


def _sample(served: ServingModel) -> _Block:
    def make() -> _Block:
        items = len(served.model.items)
        size = min(TAIL_SAMPLE, items)
        columns = np.sort(np.random.default_rng(1).choice(items, size, replace=False))
        return _Block(columns, _vectors(served, columns))

    block: _Block = served.derive("tail-sample", make)
    return block


def _cold_start(
    served: ServingModel, index: ItemIndex, context: Mapping[str, str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cold-start scores of every item for the context and the indexed items in their order,
    once per version and context (only context values the version knows count, so there
    are as many as value combinations)."""
    known = served.model.context_values
    used = tuple(
        sorted(
            (name, value)
            for name, value in (context or {}).items()
            if name in served.context_popularity and value in known.get(name, ())
        )
    )

    def make() -> tuple[np.ndarray, np.ndarray]:
        popular = ranking.cold_start_scores(served, dict(used))
        columns = index.columns
        return popular, columns[np.argsort(-popular[columns], kind="stable")]

    result: tuple[np.ndarray, np.ndarray] = served.derive(("cold-start", used), make)
    return result
