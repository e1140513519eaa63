"""What a GetRecommendations or GetPersonalizedRanking request does, without HTTP.

Reads the subject's recent history from Redis (a session stitched to a user is served as that
user), ranks through connector.serving (the code behind the precomputed lists, so both agree),
applies filters and one promotion, adds item metadata, and stores the served list under a new
recommendationId. A request without a promotion whose subject's precomputed list is current
(made from the history read with it, by the served version, under the same exploration
settings) is answered from that list: ranking it again costs several times the CPU
(docs/performance.md, CPU per API request). Every answer is stored under its
recommendationId, from which the connector derives implicit impressions when a later event
names it. Synchronous on purpose: the app runs each request in its thread pool, so the event
loop keeps accepting requests while numpy and Redis work.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from connector.api import ApiRequestError, ModelChangedError, UnknownFilterError
from connector.api.requests import (
    FilterRef,
    Promotion,
    RankingRequest,
    RecommendationsRequest,
    Who,
)
from connector.api.settings import ApiSettings
from connector.exceptions import ModelNotFoundError
from connector.keys import Keys, Subject
from connector.model.history import HistoryEntry, Interacted, ItemEvent
from connector.records import ServedList
from connector.redis_client import RedisClient
from connector.serving import from_list, ranking
from connector.serving.candidates import known_columns
from connector.serving.current_model import ModelHolder, ServingModel
from connector.serving.filters import FilterResolver
from connector.serving.ranking import Exploration, Ranked
from connector.serving.recommend import rank_items, recommend_many
from connector.stores.histories import COMMANDS, EMPTY, HistoryReader, SubjectHistory
from connector.stores.lists import StoredList
from connector.stores.served import RedisServedLists

EXPLORATION, PROMOTED = "Exploration", "Promoted item"  # Personalize's reason strings
ANSWERED_FROM_LIST, RANKED = "precomputed", "ranked"  # how a GetRecommendations was answered


class NoFilters:
    """A resolver that knows no filters: every filterName is refused as unknown."""

    def mask(
        self,
        name: str,
        values: Mapping[str, str],
        history: Sequence[ItemEvent],
        user: Mapping[str, str],
        model: ServingModel,
    ) -> np.ndarray | None:
        """Always refuses: no filter exists."""
        raise UnknownFilterError(f"filter {name!r} does not exist in this dataset group")


@dataclass(frozen=True)
class ServedItem:
    """One entry of itemList / personalizedRanking."""

    item_id: str
    score: float
    promotion_name: str | None = None
    reason: str | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Served:
    """A list as returned, under the recommendationId it was stored with."""

    recommendation_id: str
    items: list[ServedItem]


@dataclass(frozen=True)
class _Read:
    """What Redis holds for a request's subject: its history (recent events and interacted
    items), the user's metadata (for filters), and its precomputed list when that list was
    computed from exactly these events (None otherwise, or when the request cannot be
    answered from a list)."""

    subject: SubjectHistory
    user: dict[str, str]
    listed: StoredList | None = None


@dataclass(frozen=True)
class _Job:
    """One request's inputs: the model version taken for it, what was read for its subject,
    the request context and a random generator."""

    model: ServingModel
    read: _Read
    context: Mapping[str, str]
    rng: np.random.Generator = field(default_factory=np.random.default_rng)

    @property
    def history(self) -> list[HistoryEntry]:
        """The recent events the model ranks from."""
        return self.read.subject.events

    @property
    def interacted(self) -> list[Interacted]:
        """Every remembered (item, event type): seen-item exclusion and filters."""
        return self.read.subject.interacted

    @property
    def user(self) -> dict[str, str]:
        return self.read.user


class RecommendationService:
    """Answers API requests from the held model version and the group's Redis state."""

    def __init__(
        self,
        client: RedisClient,
        settings: ApiSettings,
        holder: ModelHolder,
        filters: FilterResolver | None = None,
        on_answer: Callable[[str], None] | None = None,
    ) -> None:
        self._client, self._settings, self._holder = client, settings, holder
        self._on_answer = on_answer or (lambda source: None)
        self._keys = Keys(settings.dataset_group)
        self._filters = filters or NoFilters()
        self._served = RedisServedLists(client, self._keys)
        self._histories = HistoryReader(client, self._keys, settings.history_length)
        self._exploration = Exploration(
            settings.exploration_weight, settings.exploration_item_age_cut_off
        )

    def recommend(self, request: RecommendationsRequest) -> Served:
        """GetRecommendations: the best numResults items, with promoted items placed among
        them at random positions (in their own order), as Personalize places them.

        A request without a promotion whose subject has a precomputed list made from its
        current history, by the current version, under the same exploration settings, is
        answered from that list (serving/from_list.py): the connector already ranked it the
        same way (recommend_many), so the API does not rank again."""
        from_lists = request.promotion is None
        with_user = request.filter is not None or request.promotion is not None
        job = self._job(request.who, request.context, with_user, with_list=from_lists)
        mask = self._mask(job, request.filter)
        listed = self._from_list(job, request, mask) if from_lists else None
        if listed is not None:
            self._on_answer(ANSWERED_FROM_LIST)
            return self._store(self._with_metadata(listed, request.metadata_columns), request.who)
        promoted = self._promoted(job, request.promotion, request.num_results)
        allowed = _minus(job.model, mask, (e.item_id for e in promoted))
        (top,) = recommend_many(
            job.model,
            [job.history],
            request.num_results - len(promoted),
            self._exploration,
            job.rng,
            interacted=[job.read.subject.interacted_items],
            context=job.context,
            allowed_for=lambda _: allowed,
        )
        ranked = _items(job.model, top)
        items = _interleave(ranked, promoted, job.rng)
        self._on_answer(RANKED)
        return self._store(self._with_metadata(items, request.metadata_columns), request.who)

    def rank(self, request: RankingRequest) -> Served:
        """GetPersonalizedRanking: the input items best first; items the model does not know
        last with score 0, as Personalize appends items absent from training."""
        job = self._job(request.who, request.context, request.filter is not None)
        allowed = self._mask(job, request.filter)
        ranked, unknown = rank_items(
            job.model, job.history, request.input_list, job.context, allowed
        )
        items = _items(job.model, ranked) + [ServedItem(i, 0.0) for i in dict.fromkeys(unknown)]
        return self._store(self._with_metadata(items, request.metadata_columns), request.who)

    def _job(
        self, who: Who, context: Mapping[str, str], with_user: bool, with_list: bool = False
    ) -> _Job:
        model = self._holder.current
        if model is None:
            raise ModelNotFoundError(
                f"no model version is published for dataset group "
                f"{self._settings.dataset_group!r} yet: train one with `streamrec train`"
            )
        return _Job(model, self._subject(who, with_user, with_list), context)

    def _subject(self, who: Who, with_user: bool, with_list: bool) -> _Read:
        """The user's recent events (a session stitched to a user is that user), else the
        session's; the user's metadata when a filter may need it; and, when asked, the
        precomputed list of the same subject, all in one round trip."""
        user_id = who.user_id or self._stitched(who.session_id)
        subjects = [Subject("u", user_id)] if user_id else []
        subjects += [Subject("s", who.session_id)] if who.session_id else []
        pipe = self._client.pipeline(transaction=False)
        for subject in subjects:
            self._histories.queue(pipe, subject)
            if with_list:
                pipe.get(self._keys.recommendations(subject))
        if with_user and user_id:
            pipe.hgetall(self._keys.user(user_id))
        replies = pipe.execute()
        per_subject = COMMANDS + 1 if with_list else COMMANDS
        read = [
            (
                self._histories.parse(replies[n * per_subject : n * per_subject + COMMANDS]),
                replies[n * per_subject + COMMANDS] if with_list else None,
            )
            for n in range(len(subjects))
        ]
        user = replies[-1] if with_user and user_id else {}
        history, listed = next(((h, raw) for h, raw in read if h.members), (EMPTY, None))
        return _Read(
            history,
            {_text(k): _text(v) for k, v in user.items()},
            _made_from(listed, history),
        )

    def _stitched(self, session_id: str | None) -> str | None:
        if session_id is None:
            return None
        linked = self._client.get(self._keys.session_user(session_id))
        return _text(linked) if linked is not None else None

    def _from_list(
        self, job: _Job, request: RecommendationsRequest, mask: np.ndarray | None
    ) -> list[ServedItem] | None:
        """The answer from the subject's precomputed list under the request's filter `mask`
        (None: no filter), or None when that list is not what ranking now would give: other
        terms, too few entries, or a request context that would change a cold-start list."""
        listed = job.read.listed
        if listed is None or listed.terms is None or listed.version != job.model.version:
            return None
        terms = listed.terms
        same_terms = (
            terms.filter is None
            and terms.exploration_weight == self._exploration.weight
            and terms.exploration_item_age_cut_off == self._exploration.item_age_cut_off_days
        )
        personal = any(entry.item in job.model.columns for entry in job.history)
        if not same_terms or (request.context and not personal):
            return None  # a user without known events is ranked by the context's popularity
        columns = [job.model.columns.get(item) for item, _ in listed.items]
        if None in columns:
            return None
        entries = from_list.ListEntries(
            np.array([score for _, score in listed.items], np.float64),
            np.array([n in listed.explored for n in range(len(columns))], bool),
        )
        if mask is None:
            answer = from_list.first(entries, request.num_results)
        else:
            at = np.array(columns, np.int64)
            share = _rest_share(job, mask, at)
            weight = self._exploration.weight
            answer = from_list.filtered(entries, request.num_results, weight, mask[at], share)
        if answer is None:
            return None
        return [
            ServedItem(listed.items[p][0], score, reason=EXPLORATION if explored else None)
            for p, score, explored in zip(
                answer.positions.tolist(),
                answer.scores.tolist(),
                answer.explored.tolist(),
                strict=True,
            )
        ]

    def _mask(self, job: _Job, ref: FilterRef | None) -> np.ndarray | None:
        """The items `ref` allows, from the resolver, its errors turned into a 404 (no such
        filter) or a 400."""
        if ref is None:
            return None
        try:
            mask = self._filters.mask(ref.name, ref.values, job.interacted, job.user, job.model)
        except ApiRequestError:
            raise
        except LookupError as exc:  # the resolver's unknown name
            raise UnknownFilterError(str(exc.args[0] if exc.args else exc)) from exc
        except ValueError as exc:  # values the filter cannot use
            raise ApiRequestError(str(exc.args[0] if exc.args else exc)) from exc
        if mask is not None and mask.shape != (len(job.model.model.items),):
            raise ModelChangedError("the model version changed during the request; retry")
        return mask

    def _promoted(self, job: _Job, promotion: Promotion | None, count: int) -> list[ServedItem]:
        """The promotion's share of the list: the most relevant items its filter allows that
        the subject has not interacted with. Items without interaction data qualify too (a
        promotion of new items is what Personalize suggests promotions for), so this ranks
        with rank_columns rather than recommend_many, which leaves those to exploration."""
        if promotion is None:
            return []
        wanted = max(1, round(count * promotion.percent / 100))
        seen = job.read.subject.interacted_items
        mask = _minus(job.model, self._mask(job, promotion.filter), seen)
        columns = np.arange(len(job.model.model.items)) if mask is None else np.flatnonzero(mask)
        ranked = ranking.rank_columns(job.model, job.history, job.context, columns)
        return [
            replace(item, promotion_name=promotion.name, reason=PROMOTED)
            for item in _items(job.model, ranked)[:wanted]
        ]

    def _with_metadata(self, items: list[ServedItem], columns: tuple[str, ...]) -> list[ServedItem]:
        """Each item with the requested fields of its Items row (those it has a value for)."""
        if not columns:
            return items
        pipe = self._client.pipeline(transaction=False)
        for item in items:
            pipe.hmget(self._keys.item(item.item_id), [column.upper() for column in columns])
        rows = pipe.execute()
        return [
            replace(item, metadata=_present(columns, row))
            for item, row in zip(items, rows, strict=True)
        ]

    def _store(self, items: list[ServedItem], who: Who) -> Served:
        """Keep the list under a new recommendationId for implicit impressions, among the
        newest STREAMREC_API_SERVED_PER_SUBJECT of the user (else the session) asking."""
        served = Served(str(uuid.uuid4()), items)
        listed = ServedList([item.item_id for item in items], self._settings.api_attribution_source)
        owner = Subject("u", who.user_id) if who.user_id else Subject("s", who.session_id or "")
        settings = self._settings
        self._served.put(
            served.recommendation_id,
            listed,
            settings.api_served_ttl_seconds,
            owner,
            settings.api_served_per_subject,
        )
        return served


def _rest_share(job: _Job, mask: np.ndarray, listed: np.ndarray) -> float:
    """The share of the items a list could have held but does not (every item but the
    subject's seen ones and the listed ones) that the filter `mask` allows."""
    model = job.model
    seen = known_columns(model, job.read.subject.interacted_items)
    others = len(model.model.items) - len(seen) - len(listed)
    if others <= 0:
        return 0.0
    allowed = int(np.count_nonzero(mask)) - int(np.count_nonzero(mask[seen]))
    allowed -= int(np.count_nonzero(mask[listed]))
    return max(allowed, 0) / others


def _made_from(raw: bytes | None, history: SubjectHistory) -> StoredList | None:
    """The stored list `raw` if it was computed from exactly the events of `history`."""
    if raw is None or not history.members:
        return None
    listed = StoredList.from_json(raw)
    if listed.terms is None or listed.terms.basis != history.basis:
        return None
    return listed


def _items(model: ServingModel, ranked: Ranked) -> list[ServedItem]:
    ids = model.model.items
    return [
        ServedItem(ids[int(column)], float(score), reason=EXPLORATION if explored else None)
        for column, score, explored in zip(
            ranked.columns, ranked.scores, ranked.explored, strict=True
        )
    ]


def _minus(
    model: ServingModel, allowed: np.ndarray | None, ids: Iterable[str]
) -> np.ndarray | None:
    """`allowed` (every item when None) less the items `ids` that the model knows; None
    (every item) when there is neither a filter nor an item to take out, so a plain request
    allocates nothing of the catalogue's size."""
    columns = [model.columns[item] for item in ids if item in model.columns]
    if allowed is None and not columns:
        return None
    mask = np.ones(len(model.model.items), bool) if allowed is None else allowed.copy()
    mask[columns] = False
    return mask


def _present(columns: tuple[str, ...], values: list[bytes | None]) -> dict[str, str]:
    return {c: v.decode() for c, v in zip(columns, values, strict=True) if v is not None}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _interleave(
    ranked: list[ServedItem], promoted: list[ServedItem], rng: np.random.Generator
) -> list[ServedItem]:
    """Promoted items at random positions, in their own order; the others in theirs."""
    if not promoted:
        return ranked
    total = len(ranked) + len(promoted)
    spots = set(rng.choice(total, size=len(promoted), replace=False).tolist())
    rest, extra = iter(ranked), iter(promoted)
    return [next(extra) if position in spots else next(rest) for position in range(total)]
