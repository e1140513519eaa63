"""From user histories to ranked item lists: relevance, cold start, exploration, impressions.

Pure functions over a ServingModel, so the connector's precomputed lists, the HTTP API and
the tests rank the same way.

- Relevance is the model's score from the user's history (connector.model.model). A user with
  no known events gets popularity instead, recency-weighted, per context value when the
  request gives a context (DEVICE=tv favours what is watched on TVs).
- Items the user was shown and did not interact with lose IGNORED_IMPRESSION_PENALTY of score
  per showing, so a list does not keep offering what was passed over.
- Exploration, as Personalize's `explorationWeight`: up to that share of the list's slots
  goes to cold items, those with little interaction data (popularity in the lowest
  quartile) that are new: created no earlier than `explorationItemAgeCutOff` days before
  the newest interaction. An item is new only with evidence of its age (CREATION_TIMESTAMP,
  else its first interaction); an item with neither is not explored, so a catalogue imported
  without creation times does not spend the list on items nobody ever chose, and when no
  item is new the answer is the answer with weight 0. A cold item is explored for a user
  only if it scores above the user's exploration floor (`exploration_floor`), which the
  weight lowers: at the default weight about one slot in ten when a few percent of the
  catalogue is new, every slot at weight 1 (docs/model.md, Exploration). Those that pass
  are drawn in proportion to their relevance (Gumbel top-k), and each takes the last slot
  of an equal stretch of the list (`explored_positions`). Items with no interaction data at all
  (new items UPDATE placed from metadata or sequences) reach a list only through
  exploration, so weight 0 means lists rest on interaction data alone.
- Scores are probabilities: a softmax over the items that may be recommended, as Personalize
  reports them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from connector.model.history import HistoryEntry
from connector.serving.current_model import SECONDS_PER_DAY, ServingModel

IGNORED_IMPRESSION_PENALTY = 1.0  # score (logit) lost per showing without interaction
COLD_POPULARITY_QUANTILE = 0.25
EXPLORATION_LEAN = 2.0  # most standard deviations of relevance an exploration draw favours
# How far below the user's REFERENCE_DEPTH-th best item, in top-ranges (best minus that
# item) times the weight's odds, a cold item may score and still be explored (docs/model.md).
EXPLORATION_GATE = 6.0
REFERENCE_DEPTH = 10
CONTEXT_SHARE = 0.7  # weight of the context's popularity against overall, for cold start


@dataclass(frozen=True)
class Exploration:
    """Personalize's item exploration campaign configuration."""

    weight: float = 0.3
    item_age_cut_off_days: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"explorationWeight must be between 0 and 1, got {self.weight}")
        if self.item_age_cut_off_days <= 0:
            raise ValueError("explorationItemAgeCutOff must be a positive number of days")


@dataclass(frozen=True)
class ListAsk:
    """What one ranking is asked for: the list's length, the exploration settings, and the
    random source of its exploration draws."""

    count: int
    exploration: Exploration
    rng: np.random.Generator

    @property
    def slots(self) -> int:
        """The most slots exploration may take."""
        return exploration_slots(self.exploration.weight, self.count)


def exploration_slots(weight: float, count: int) -> int:
    """The most slots exploration may take in a list of `count`: round(weight × count)."""
    return round(weight * count)


@dataclass(frozen=True)
class Ranked:
    """A ranked list: item columns of the model, best first, and their scores."""

    columns: np.ndarray
    scores: np.ndarray
    explored: np.ndarray  # bool per position: placed by exploration


def relevance(
    served: ServingModel,
    histories: Sequence[Sequence[HistoryEntry]],
    context: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Score of every item for each history (float32, (len(histories), items))."""
    scores = np.empty((len(histories), len(served.model.items)), np.float32)
    personal = [i for i, h in enumerate(histories) if is_personal(served, h)]
    if personal:
        scores[personal] = served.model.score_histories([histories[i] for i in personal])
    cold = sorted(set(range(len(histories))) - set(personal))
    if cold:
        scores[cold] = cold_start_scores(served, context)
    return scores


def relevance_at(
    served: ServingModel,
    history: Sequence[HistoryEntry],
    context: Mapping[str, str] | None,
    columns: np.ndarray,
) -> np.ndarray:
    """relevance(served, [history], context)[0][columns], scoring only those items."""
    if is_personal(served, history):
        return served.model.scores_at(served.model.user_states([history])[0], columns)
    result: np.ndarray = cold_start_scores(served, context)[columns]
    return result


def is_personal(served: ServingModel, history: Sequence[HistoryEntry]) -> bool:
    """Whether the model scores this history (it holds an item the model knows); else its
    relevance is popularity (cold start)."""
    return any(entry.item in served.columns for entry in history)


def cold_start_scores(served: ServingModel, context: Mapping[str, str] | None) -> np.ndarray:
    """Log popularity, mixed with the popularity under each given context value."""
    overall = served.popularity / max(float(served.popularity.sum()), 1e-12)
    mixed = np.zeros_like(overall)
    used = 0
    for name, value in (context or {}).items():
        table, values = served.context_popularity.get(name), served.model.context_values.get(name)
        if table is None or values is None or value not in values:
            continue
        column = table[:, values.index(value)]
        mixed += column / max(float(column.sum()), 1e-12)
        used += 1
    if used:
        overall = CONTEXT_SHARE * mixed / used + (1 - CONTEXT_SHARE) * overall
    result: np.ndarray = np.log(overall + 1e-9).astype(np.float32)
    return result


def ignored_impressions(served: ServingModel, history: Sequence[HistoryEntry]) -> np.ndarray:
    """Per item, how often it was shown to the user without the user interacting with it."""
    counts = np.zeros(len(served.model.items), np.float32)
    for column, times in ignored_shown(served, history).items():
        counts[column] = times
    return counts


def ignored_shown(served: ServingModel, history: Sequence[HistoryEntry]) -> dict[int, int]:
    """The columns of the items shown to the user and not interacted with, and how often."""
    interacted = {entry.item for entry in history}
    shown = Counter(
        item for entry in history for item in entry.impression if item not in interacted
    )
    return {served.columns[item]: times for item, times in shown.items() if item in served.columns}


def unproven_items(served: ServingModel) -> np.ndarray:
    """Items without any interaction in the model's data (new items placed by UPDATE)."""
    result: np.ndarray = served.popularity <= 0
    return result


def cold_items(served: ServingModel, exploration: Exploration) -> np.ndarray:
    """Items exploration may pick: little interaction data and recent enough. Depends only
    on the version and the settings, so it is computed once per version (a quantile over a
    large catalogue costs milliseconds per request otherwise)."""

    def make() -> np.ndarray:
        cut_off = served.latest_timestamp - exploration.item_age_cut_off_days * SECONDS_PER_DAY
        recent = (served.created >= 0) & (served.created >= cut_off)  # -1: age unknown
        threshold = np.quantile(served.popularity, COLD_POPULARITY_QUANTILE)
        result: np.ndarray = recent & (served.popularity <= threshold)
        return result

    cold: np.ndarray = served.derive(("cold", exploration.item_age_cut_off_days), make)
    return cold


def rank(
    scores: np.ndarray,
    ask: ListAsk,
    allowed: np.ndarray,
    cold: np.ndarray,
    unproven: np.ndarray | None = None,
    gated: bool = True,
) -> Ranked:
    """The best `ask.count` allowed items for one user (`choose` on one row); scores are a
    softmax over the allowed items."""
    adjusted = np.where(allowed, scores, -np.inf)
    columns, explored = choose(adjusted[None, :], cold, unproven, ask, gated).row(0)
    return Ranked(columns, _softmax_at(adjusted, columns), explored)


@dataclass(frozen=True)
class Choice:
    """The positions `choose` picked in each row, best first with the explored ones placed,
    -1 past a row's length."""

    positions: np.ndarray  # (rows, count) int64
    explored: np.ndarray  # (rows, count) bool: placed by exploration
    lengths: np.ndarray  # (rows,) how many were picked: fewer than count when too few allowed

    @classmethod
    def empty(cls, rows: int, count: int) -> Choice:
        """Nothing picked yet, for `rows` lists of at most `count`."""
        return cls(
            np.full((rows, count), -1, np.int64),
            np.zeros((rows, count), bool),
            np.zeros(rows, np.int64),
        )

    def row(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """One row's picks and explored flags, without the padding."""
        length = int(self.lengths[row])
        return self.positions[row, :length], self.explored[row, :length]


def choose(
    adjusted: np.ndarray,
    cold: np.ndarray,
    unproven: np.ndarray | None,
    ask: ListAsk,
    gated: bool = True,
) -> Choice:
    """The ranking rule, for one user or a batch, over rows of `adjusted` scores ((rows, n),
    -inf where not allowed): up to `ask.slots` of the row's `cold` columns that reach its
    exploration floor (`exploration_floor`; `gated` False for users without history, whose
    scores are only popularity) are drawn by relevance (`_draw`), the row's best exploitable
    items fill the rest, and the explored ones take the positions `explored_positions`
    gives. `unproven` columns (no interaction data) enter only through exploration, so with
    weight 0 a list rests on interaction data alone."""
    rows, count = len(adjusted), ask.count
    exploitable = adjusted.copy()
    if unproven is not None:
        exploitable[:, unproven] = -np.inf
    cold_columns = np.flatnonzero(cold)
    drawn, numbers = _draw(adjusted[:, cold_columns], exploitable, ask, gated)
    picks = cold_columns[drawn]
    choice = Choice.empty(rows, count)
    for number in np.unique(numbers):
        group = np.flatnonzero(numbers == number)
        explore = picks[group, :number]
        barred = exploitable[group]
        np.put_along_axis(barred, explore, -np.inf, axis=1)
        exploits = np.minimum(count - number, np.isfinite(barred).sum(axis=1))
        for exploit in np.unique(exploits):
            part = exploits == exploit
            best = _top(barred[part], int(exploit))
            _place(choice, group[part], best, explore[part], ask.slots)
    return choice


def _place(
    choice: Choice, rows: np.ndarray, exploit: np.ndarray, explore: np.ndarray, slots: int
) -> None:
    """Writes rows that all have as many exploited and explored items into `choice`, the
    explored ones where `explored_positions` puts them."""
    total = exploit.shape[1] + explore.shape[1]
    pattern = explored_positions(total, explore.shape[1], slots)
    picked = np.empty((len(rows), total), np.int64)
    picked[:, pattern] = explore
    picked[:, ~pattern] = exploit
    choice.positions[rows, :total] = picked
    choice.explored[rows, :total] = pattern
    choice.lengths[rows] = total


def exploration_floor(exploitable: np.ndarray, weight: float) -> float:
    """The least score a cold item needs to be explored for this user: `gate_width(weight)`
    top-ranges below the REFERENCE_DEPTH-th best exploitable score, a top-range being the
    best score minus that one. Relative to the user's own top, so the same on every serving
    path and for every list length; more weight lets less relevant new items in. -inf when
    nothing is exploitable."""
    return float(exploration_floors(exploitable[None, :], weight)[0])


def exploration_floors(exploitable: np.ndarray, weight: float) -> np.ndarray:
    """`exploration_floor` of each row of a (users, items) array (-inf: not exploitable)."""
    rows, width = exploitable.shape
    depth = min(REFERENCE_DEPTH, width)
    floors = np.full(rows, -np.inf)
    gate = gate_width(weight)
    if depth == 0 or np.isinf(gate):
        return floors
    top = np.partition(exploitable, width - depth, axis=1)[:, width - depth :]
    finite = np.isfinite(top)
    best = np.max(np.where(finite, top, -np.inf), axis=1)
    reference = np.min(np.where(finite, top, np.inf), axis=1)
    some = finite.any(axis=1)
    floors[some] = reference[some] - gate * (best[some] - reference[some])
    return floors


def gate_width(weight: float) -> float:
    """Top-ranges below the reference item a cold item may score and still be explored:
    EXPLORATION_GATE times the odds weight / (1 - weight), so 0 explores nothing and 1 lets
    every cold item through."""
    return np.inf if weight >= 1.0 else EXPLORATION_GATE * weight / (1.0 - weight)


def rank_given(scores: np.ndarray, columns: np.ndarray, allowed: np.ndarray) -> Ranked:
    """GetPersonalizedRanking: the given item columns (those allowed), best first."""
    keep = columns[allowed[columns]]
    order = keep[np.argsort(-scores[keep], kind="stable")]
    probabilities = _softmax_at(np.where(_mask(len(scores), keep), scores, -np.inf), order)
    return Ranked(order, probabilities, np.zeros(len(order), dtype=bool))


def rank_columns(
    served: ServingModel,
    history: Sequence[HistoryEntry],
    context: Mapping[str, str] | None,
    columns: np.ndarray,
) -> Ranked:
    """The items `columns` ranked for `history`, best first, scoring only those items (for
    GetPersonalizedRanking and promotions, which rank a given set)."""
    scores = relevance_at(served, history, context, columns)
    ranked = rank_given(scores, np.arange(len(columns)), np.ones(len(columns), bool))
    return Ranked(columns[ranked.columns], ranked.scores, ranked.explored)


def _draw(
    cold: np.ndarray, exploitable: np.ndarray, ask: ListAsk, gated: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the positions among its `cold` scores ((rows, c), -inf where not allowed) of
    up to `ask.slots` items at or above its exploration floor, drawn without replacement in
    proportion to the softmax of their standardised score capped at EXPLORATION_LEAN
    standard deviations (Gumbel top-k; drawn first, then padding), and how many were drawn.
    The cap keeps relevance a lean, not a verdict: an item whose embedding sits at the
    centre of the catalogue (a new item placed from metadata) would otherwise win every
    user's exploration slot."""
    rows, width = cold.shape
    slots = min(ask.slots, width)
    eligible = np.isfinite(cold)
    if slots <= 0 or not eligible.any():  # the floor costs a pass over the catalogue
        return np.zeros((rows, 0), np.int64), np.zeros(rows, np.int64)
    floors = (
        exploration_floors(exploitable, ask.exploration.weight) if gated else np.full(rows, -np.inf)
    )
    number = eligible.sum(axis=1)
    mean = np.where(eligible, cold, 0.0).sum(axis=1) / np.maximum(number, 1)
    deviation = np.where(eligible, cold - mean[:, None], 0.0)
    spread = np.sqrt((deviation**2).sum(axis=1) / np.maximum(number, 1))
    spread = np.where(number > 1, np.maximum(spread, 1e-6), 1.0)
    leaning = np.clip(deviation / spread[:, None], -EXPLORATION_LEAN, EXPLORATION_LEAN)
    passing = eligible & (cold >= floors[:, None])
    noisy = np.full(cold.shape, -np.inf)
    noisy[passing] = leaning[passing] + _gumbel(ask.rng, int(passing.sum()))
    drawn = _top(noisy, slots)
    drawn_count = np.isfinite(np.take_along_axis(noisy, drawn, axis=1)).sum(axis=1)
    return drawn, drawn_count


def _gumbel(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard Gumbel noise in float32 (-log(-log(U))): a fifth of the cost of
    rng.gumbel's float64 when a batch draws for a thousand cold items a row."""
    uniform = rng.random(size, dtype=np.float32)
    with np.errstate(divide="ignore"):
        result: np.ndarray = -np.log(-np.log(uniform))
    return result


def _top(scores: np.ndarray, count: int) -> np.ndarray:
    """Per row of `scores`, the positions of its `count` best, best first (ties by
    position); rows with fewer finite scores get -inf ones last."""
    if count <= 0:
        return np.zeros((len(scores), 0), np.int64)
    best = np.argpartition(-scores, count - 1, axis=1)[:, :count]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
    result: np.ndarray = np.take_along_axis(best, order, axis=1)
    return result


def interleave(
    exploit: np.ndarray, explore: np.ndarray, count: int, slots: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Explored items among the exploited ones in a list of at most `count`, where `choose`
    places them (`explored_positions`): the list's columns and which are explored."""
    explore = explore[:count]
    total = min(count, len(exploit) + len(explore))
    choice = Choice.empty(1, total)
    slots = len(explore) if slots is None else slots
    _place(
        choice, np.zeros(1, np.int64), exploit[None, : total - len(explore)], explore[None], slots
    )
    return choice.row(0)


def explored_positions(total: int, explored: int, slots: int | None = None) -> np.ndarray:
    """Which of `total` slots exploration takes for `explored` items (bool per slot): the
    last slot of each of the first `explored` of `slots` (default `explored`) equal
    stretches, so every prefix of a list explores as a list of that length would and the
    best exploited items come first (docs/model.md, Exploration). Where short lists make
    stretches share a last slot, the later item takes the next free one."""
    positions = np.zeros(total, dtype=bool)
    explored = min(explored, total)
    stretches = max(explored, slots or 0)
    if explored:
        ends = np.ceil((np.arange(explored) + 1) * total / stretches - 1e-9).astype(int) - 1
        ends = np.maximum.accumulate(np.maximum(ends, 0) - np.arange(explored)) + np.arange(
            explored
        )
        positions[np.minimum(ends, total - 1)] = True
    return positions


def _mask(size: int, columns: np.ndarray) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[columns] = True
    return mask


def _softmax_at(scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
    finite = scores[np.isfinite(scores)]
    if not len(finite) or not len(columns):
        return np.zeros(len(columns), np.float64)
    top = float(finite.max())
    total = float(np.exp(finite - top).sum())
    result: np.ndarray = np.exp(scores[columns] - top) / total
    return result
