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

import numpy as np
import redis

from connector.keys import Keys, Subject
from connector.model.history import HistoryEntry, parse_member
from connector.serving.current_model import ModelHolder, ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from connector.stores.lists import RecommendationLists, StoredList

log = logging.getLogger("streamrec.serving")


@dataclass(frozen=True)
class ListPolicy:
    """How long the lists are, what they are computed from, how much they explore."""

    size: int = 100
    history_events: int = 50
    exploration: Exploration = Exploration()
    chunk: int = 500  # users scored together when refreshing everyone


class ListRefresher:
    """Recomputes precomputed lists of one dataset group."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        holder: ModelHolder,
        lists: RecommendationLists,
        policy: ListPolicy,
    ) -> None:
        self._client, self._keys, self._holder = client, keys, holder
        self._lists, self._policy = lists, policy
        self._rng = np.random.default_rng()

    def refresh(self, subjects: Iterable[Subject]) -> int:
        """Recompute the lists of `subjects` with the current model; how many were written."""
        served = self._holder.current
        unique = list(dict.fromkeys(subjects))
        if served is None or not unique:
            return 0
        histories = self._histories(unique)
        ranked = recommend_many(
            served, histories, self._policy.size, self._policy.exploration, self._rng
        )
        self._lists.write(
            [
                (subject, _stored(served, ranking.columns, ranking.scores))
                for subject, ranking in zip(unique, ranked, strict=True)
            ]
        )
        return len(unique)

    def refresh_active(self, stop: threading.Event | None = None) -> int:
        """Refresh every recently active subject, most recent first (after a new version);
        returns how many lists were rewritten."""
        tags = self._lists.active()  # a snapshot: refreshing reorders the set
        done = 0
        for start in range(0, len(tags), self._policy.chunk):
            if stop is not None and stop.is_set():
                break
            done += self.refresh(
                Subject.from_tag(t) for t in tags[start : start + self._policy.chunk]
            )
        log.info("refreshed %d precomputed lists", done)
        return done

    def _histories(self, subjects: Sequence[Subject]) -> list[list[HistoryEntry]]:
        pipe = self._client.pipeline(transaction=False)
        for subject in subjects:
            pipe.zrange(self._keys.history(subject), -self._policy.history_events, -1)
        return [[parse_member(m) for m in members] for members in pipe.execute()]


def _stored(served: ServingModel, columns: np.ndarray, scores: np.ndarray) -> StoredList:
    items = [
        (served.model.items[column], round(float(score), 6))
        for column, score in zip(columns, scores, strict=True)
    ]
    return StoredList(served.version, int(time.time() * 1000), items)
