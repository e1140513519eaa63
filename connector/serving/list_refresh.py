"""Keeping each user's precomputed list fresh: after every batch of events for the users it
touched, and for everyone active when a new model version arrives.

A batch's users are scored together (one matrix product), from their latest history in
Redis, so the list reflects the events the batch just recorded. Nothing happens while no
model version is published. The refresh is idempotent (it recomputes from stored state), so
a batch replayed after a crash simply refreshes the same lists again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from connector.exceptions import FilterError
from connector.keys import Keys, Subject
from connector.redis_client import RedisClient
from connector.serving.current_model import ModelHolder, ServingModel
from connector.serving.filters import FilterResolver
from connector.serving.ranking import Exploration, Ranked
from connector.serving.recommend import recommend_many
from connector.stores.histories import HistoryReader, SubjectHistory
from connector.stores.lists import ListEncoder, ListTerms, RecommendationLists

log = logging.getLogger("streamrec.serving")


class RefreshesLists(Protocol):
    """What the ingest path refreshes a batch's lists with: a ListRefresher, or the child
    process that runs one (refresh_process.py)."""

    def refresh(self, subjects: Iterable[Subject]) -> int:
        """Recompute the lists of `subjects`; how many were written."""
        ...


@dataclass(frozen=True)
class ListPolicy:
    """How long the lists are, what they are computed from, how much they explore."""

    size: int = 100
    exploration: Exploration = Exploration()
    chunk: int = 500  # users scored together when refreshing everyone
    filter_name: str | None = None  # a named filter every list goes through
    active_max: int = 100_000  # most recently active subjects refreshed at a new version
    active_rate: float = 2_000.0  # subjects per second at most then (0: no limit)


class ListRefresher:
    """Recomputes precomputed lists of one dataset group."""

    def __init__(
        self,
        client: RedisClient,
        keys: Keys,
        holder: ModelHolder,
        lists: RecommendationLists,
        policy: ListPolicy,
        histories: HistoryReader,
        filters: FilterResolver | None = None,
    ) -> None:
        self._client, self._keys, self._holder = client, keys, holder
        self._lists, self._policy, self._filters = lists, policy, filters
        self._histories = histories
        self._rng = np.random.default_rng()

    def refresh(self, subjects: Iterable[Subject]) -> int:
        """Recompute the lists of `subjects` with the current model; how many were written."""
        served = self._holder.current
        unique = list(dict.fromkeys(subjects))
        if served is None:
            self._lists.mark_active(unique)  # the first version will make their lists
            return 0
        if not unique:
            return 0
        read = self._histories.read(unique)
        try:
            masks = self._masks(served, unique, read)
        except (FilterError, LookupError) as exc:
            log.error("lists not refreshed: filter %r fails: %s", self._policy.filter_name, exc)
            return 0  # the previous lists stay; better stale than unfiltered
        ranked = recommend_many(
            served,
            [history.events for history in read],
            self._policy.size,
            self._policy.exploration,
            self._rng,
            interacted=[history.interacted_items for history in read],
            allowed_for=masks.__getitem__ if masks else None,
        )
        self._lists.write(
            [
                (subject, _encoded(served, ranking, self._terms(history)))
                for subject, ranking, history in zip(unique, ranked, read, strict=True)
            ]
        )
        return len(unique)

    def refresh_active(self, stop: threading.Event | None = None) -> int:
        """Refresh the most recently active subjects (at most ListPolicy.active_max, most
        recent first, at most active_rate a second so that the batches' own refreshes keep
        their pace) after a new version; returns how many lists were rewritten."""
        policy = self._policy
        tags = self._lists.active(policy.active_max)  # a snapshot: refreshing reorders it
        started, done = time.monotonic(), 0
        for start in range(0, len(tags), policy.chunk):
            if stop is not None and stop.is_set():
                break
            done += self.refresh(Subject.from_tag(t) for t in tags[start : start + policy.chunk])
            if policy.active_rate > 0:
                ahead = done / policy.active_rate - (time.monotonic() - started)
                time.sleep(max(0.0, ahead))
        log.info("refreshed %d precomputed lists in %.1f s", done, time.monotonic() - started)
        return done

    def _masks(
        self, served: ServingModel, subjects: Sequence[Subject], histories: list[SubjectHistory]
    ) -> list[np.ndarray | None]:
        """Per subject, the items the lists filter allows (none when no filter is set)."""
        name = self._policy.filter_name
        if name is None or self._filters is None:
            return []
        pipe = self._client.pipeline(transaction=False)
        for subject in subjects:
            if subject.kind == "u":
                pipe.hgetall(self._keys.user(subject.id))
        rows = iter(pipe.execute())
        users = [
            {_text(k): _text(v) for k, v in next(rows).items()} if subject.kind == "u" else {}
            for subject in subjects
        ]
        return [
            self._filters.mask(name, {}, history.interacted, user, served)
            for history, user in zip(histories, users, strict=True)
        ]

    def _terms(self, history: SubjectHistory) -> ListTerms:
        exploration = self._policy.exploration
        return ListTerms(
            history.basis,
            self._policy.filter_name,
            exploration.weight,
            exploration.item_age_cut_off_days,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encoded(served: ServingModel, ranked: Ranked, terms: ListTerms) -> bytes:
    """The list's stored form (scores rounded in numpy: per-item round() was a tenth of a
    refresh), encoded with the version's ListEncoder."""
    encoder: ListEncoder = served.derive("list-encoder", lambda: ListEncoder(served.model.items))
    return encoder.encode(
        served.version,
        int(time.time() * 1000),
        terms,
        ranked.columns.tolist(),
        np.round(ranked.scores.astype(np.float64), 6).tolist(),
        np.flatnonzero(ranked.explored).tolist(),
    )
