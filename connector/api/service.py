"""What a GetRecommendations or GetPersonalizedRanking request does, without HTTP.

Reads the subject's recent history from Redis (a session stitched to a user is served as that
user), ranks through connector.serving (the code behind the precomputed lists, so both agree),
applies filters and one promotion, adds item metadata, and stores the served list under a new
recommendationId, from which the connector derives implicit impressions when a later event
names it. Synchronous on purpose: the app runs it in a worker thread, so the event loop keeps
accepting requests while numpy and Redis work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import redis

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
from connector.ingest.records import ServedList
from connector.keys import Keys, Subject
from connector.model.history import HistoryEntry, parse_member
from connector.serving import ranking
from connector.serving.current_model import ModelHolder, ServingModel
from connector.serving.filters import FilterResolver
from connector.serving.ranking import Exploration, Ranked
from connector.serving.recommend import rank_items, recommend_many
from connector.stores.served import RedisServedLists

EXPLORATION, PROMOTED = "Exploration", "Promoted item"  # Personalize's reason strings


class NoFilters:
    """A resolver that knows no filters: every filterName is refused as unknown."""

    def mask(
        self,
        name: str,
        values: Mapping[str, str],
        history: Sequence[HistoryEntry],
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
class _Job:
    """One request's inputs: the model version taken for it, the subject's recent events,
    the user's metadata (for filters), the request context and a random generator."""

    model: ServingModel
    history: list[HistoryEntry]
    user: dict[str, str]
    context: Mapping[str, str]
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


class RecommendationService:
    """Answers API requests from the held model version and the group's Redis state."""

    def __init__(
        self,
        client: redis.Redis,
        settings: ApiSettings,
        holder: ModelHolder,
        filters: FilterResolver | None = None,
    ) -> None:
        self._client, self._settings, self._holder = client, settings, holder
        self._keys = Keys(settings.dataset_group)
        self._filters = filters or NoFilters()
        self._served = RedisServedLists(client, self._keys)
        self._exploration = Exploration(
            settings.exploration_weight, settings.exploration_item_age_cut_off
        )

    def recommend(self, request: RecommendationsRequest) -> Served:
        """GetRecommendations: the best numResults items, with promoted items placed among
        them at random positions (in their own order), as Personalize places them."""
        job = self._job(request.who, request.context, bool(request.filter or request.promotion))
        promoted = self._promoted(job, request.promotion, request.num_results)
        allowed = _minus(job.model, self._mask(job, request.filter), (e.item_id for e in promoted))
        (top,) = recommend_many(
            job.model,
            [job.history],
            request.num_results - len(promoted),
            self._exploration,
            job.rng,
            context=job.context,
            allowed_for=lambda _: allowed,
        )
        ranked = _items(job.model, top)
        items = _interleave(ranked, promoted, job.rng)
        return self._store(self._with_metadata(items, request.metadata_columns))

    def rank(self, request: RankingRequest) -> Served:
        """GetPersonalizedRanking: the input items best first; items the model does not know
        last with score 0, as Personalize appends items absent from training."""
        job = self._job(request.who, request.context, request.filter is not None)
        allowed = self._mask(job, request.filter)
        ranked, unknown = rank_items(
            job.model, job.history, request.input_list, job.context, allowed
        )
        items = _items(job.model, ranked) + [ServedItem(i, 0.0) for i in dict.fromkeys(unknown)]
        return self._store(self._with_metadata(items, request.metadata_columns))

    def _job(self, who: Who, context: Mapping[str, str], with_user: bool) -> _Job:
        model = self._holder.current
        if model is None:
            raise ModelNotFoundError(
                f"no model version is published for dataset group "
                f"{self._settings.dataset_group!r} yet: train one with `streamrec train`"
            )
        return _Job(model, *self._subject(who, with_user), context)

    def _subject(self, who: Who, with_user: bool) -> tuple[list[HistoryEntry], dict[str, str]]:
        """The user's recent events (a session stitched to a user is that user), else the
        session's; and the user's metadata when a filter may need it."""
        user_id = who.user_id or self._stitched(who.session_id)
        subjects = [Subject("u", user_id)] if user_id else []
        subjects += [Subject("s", who.session_id)] if who.session_id else []
        pipe = self._client.pipeline(transaction=False)
        for subject in subjects:
            pipe.zrange(self._keys.history(subject), -self._settings.api_history_events, -1)
        if with_user and user_id:
            pipe.hgetall(self._keys.user(user_id))
        replies = pipe.execute()
        histories = [[parse_member(m) for m in members] for members in replies[: len(subjects)]]
        user = replies[len(subjects)] if len(replies) > len(subjects) else {}
        history = next((events for events in histories if events), [])
        return history, {_text(k): _text(v) for k, v in user.items()}

    def _stitched(self, session_id: str | None) -> str | None:
        if session_id is None:
            return None
        linked = self._client.get(self._keys.session_user(session_id))
        return _text(linked) if linked is not None else None

    def _mask(self, job: _Job, ref: FilterRef | None) -> np.ndarray | None:
        """The items `ref` allows, from the resolver, its errors turned into a 400."""
        if ref is None:
            return None
        try:
            mask = self._filters.mask(ref.name, ref.values, job.history, job.user, job.model)
        except ApiRequestError:
            raise
        except (ValueError, LookupError) as exc:  # the resolver's unknown name or bad values
            raise UnknownFilterError(str(exc.args[0] if exc.args else exc)) from exc
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
        mask = _minus(job.model, self._mask(job, promotion.filter), (e.item for e in job.history))
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

    def _store(self, items: list[ServedItem]) -> Served:
        """Keep the list under a new recommendationId for implicit impressions."""
        served = Served(str(uuid.uuid4()), items)
        listed = ServedList([item.item_id for item in items], self._settings.api_attribution_source)
        self._served.put(served.recommendation_id, listed, self._settings.api_served_ttl_seconds)
        return served


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
