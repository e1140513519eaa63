"""What the demo shows: users' recommendations (from the HTTP API, with titles) and the
precomputed lists in Redis, before and after their new events, and the live figures of the
stream (events/s appended, connector lag, dead letters, model version, list freshness).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from connector.keys import Keys, Subject
from connector.redis_client import RedisClient
from connector.settings import ConnectorSettings
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore
from connector.topic_state import connector_lag, topic_records

SHOWN = 5


@dataclass(frozen=True)
class Recommended:
    """One recommended item as the API returned it."""

    item: str
    title: str
    genres: str
    reason: str | None


class Api:
    """A minimal client of `streamrec api` (urllib: nothing to install)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def recommend(self, user: str, count: int = SHOWN, **extra: Any) -> list[Recommended]:
        """GetRecommendations for `user`, with titles and genres; `extra` adds request fields
        (filterName, filterValues)."""
        body = {
            "userId": user,
            "numResults": count,
            "metadataColumns": {"ITEMS": ["TITLE", "GENRES"]},
            **extra,
        }
        request = urllib.request.Request(  # noqa: S310 - our own API's URL
            f"{self.base_url}/recommendations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            document = json.loads(response.read())
        return [_recommended(entry) for entry in document["itemList"]]


def _recommended(entry: dict[str, Any]) -> Recommended:
    metadata = entry.get("metadata") or {}
    reason = (entry.get("reason") or [None])[0]
    return Recommended(
        entry["itemId"],
        str(metadata.get("TITLE", entry["itemId"])),
        str(metadata.get("GENRES", "")),
        reason,
    )


def list_lines(items: list[Recommended], before: list[Recommended] | None = None) -> list[str]:
    """Numbered lines of titles; with `before`, items that were not in it are marked new."""
    earlier = {entry.item for entry in before} if before is not None else None
    lines = []
    for rank, entry in enumerate(items, start=1):
        genres = f"  [{entry.genres}]" if entry.genres else ""
        notes = [entry.reason.lower()] if entry.reason else []
        if earlier is not None and entry.item not in earlier:
            notes.append("new")
        suffix = f"  ({', '.join(notes)})" if notes else ""
        lines.append(f"      {rank}. {entry.title}{genres}{suffix}")
    return lines


def stored_list_line(lists: RecommendationLists, user: str, titles: dict[str, str]) -> str:
    """The user's precomputed list in Redis: its model version, age and first titles."""
    stored = lists.read(Subject("u", user))
    if stored is None:
        return "      precomputed list in Redis: none yet (written with the user's next event)"
    age = max(0.0, time.time() - stored.updated_ms / 1000)
    first = ", ".join(titles.get(item, item) for item, _ in stored.items[:3])
    return (
        f"      precomputed list in Redis (one GET): {len(stored.items)} items, refreshed "
        f"{age:.1f} s ago by model {stored.version}: {first}, ..."
    )


@dataclass
class LiveFigures:
    """Samples the stream's figures; each `line()` reports the rates since the last one."""

    settings: ConnectorSettings
    client: RedisClient
    _last: tuple[float, int] = field(default=(0.0, 0))

    def __post_init__(self) -> None:
        self._last = (time.monotonic(), self._appended())

    def _appended(self) -> int:
        return topic_records(self.settings, self.settings.topics.interactions)

    def line(self, sent: int, elapsed: float) -> str:
        """One line: events sent, appended per second, lag, dead letters, model, freshness."""
        now, appended = time.monotonic(), self._appended()
        rate = (appended - self._last[1]) / max(now - self._last[0], 1e-6)
        self._last = (now, appended)
        dead = topic_records(self.settings, self.settings.topics.deadletter)
        keys = Keys(self.settings.dataset_group)
        version = ModelStore(self.client, keys).current_version() or "none"
        return (
            f"  {elapsed:5.0f} s  sent {sent:,}  appended {rate:,.0f} events/s  "
            f"lag {connector_lag(self.settings):,}  dead letters {dead:,}  "
            f"model {version}  newest list {self.freshness(keys)}"
        )

    def freshness(self, keys: Keys) -> str:
        """How long ago the most recently refreshed precomputed list was written."""
        newest = cast(
            list[tuple[bytes, float]],
            self.client.zrevrange(keys.active_subjects, 0, 0, withscores=True),
        )
        if not newest:
            return "none"
        score = newest[0][1]
        return f"{max(0.0, time.time() - float(score) / 1000):.1f} s ago"


class UserView:
    """Prints one user's recommendations before and after their replayed events."""

    def __init__(
        self,
        api: Api,
        lists: RecommendationLists,
        titles: dict[str, str],
        say: Callable[[str], None],
    ) -> None:
        self.api, self.lists, self.titles, self.say = api, lists, titles, say

    def before(self, user: str, imported: list[dict[str, str]]) -> list[Recommended]:
        """The user's history in brief, their top 5 from the API and their stored list."""
        history = [row for row in imported if row["USER_ID"] == user]
        recent = ", ".join(self._title(row["ITEM_ID"]) for row in history[-3:])
        self.say(f"user {user}: {len(history)} ratings so far, the latest: {recent}")
        items = self.api.recommend(user)
        self.say(f"    top {SHOWN} from POST /recommendations:")
        for line in list_lines(items):
            self.say(line)
        self.say(stored_list_line(self.lists, user, self.titles))
        return items

    def filtered(self, user: str, items: list[Recommended]) -> None:
        """The same user's list through the by-genre filter, for their top list's genre."""
        genres = Counter(g for entry in items for g in entry.genres.split("|") if g)
        genre = genres.most_common(1)[0][0] if genres else "Comedy"
        values = {"GENRE": f'"{genre}"'}
        filtered = self.api.recommend(user, 3, filterName="by-genre", filterValues=values)
        self.say(f"    through filter by-genre with GENRE={genre!r}:")
        for line in list_lines(filtered):
            self.say(line)

    def after(self, user: str, replayed: list[dict[str, str]], before: list[Recommended]) -> None:
        """What the user rated live, and their top 5 now, new entries marked."""
        events = [row for row in replayed if row["USER_ID"] == user]
        rated = ", ".join(
            f"{self._title(row['ITEM_ID'])} ({row.get('EVENT_VALUE', '?')}*)" for row in events[:5]
        )
        more = f" and {len(events) - 5} more" if len(events) > 5 else ""
        self.say(f"user {user} rated {len(events)} movies live: {rated}{more}")
        self.say(f"    top {SHOWN} from POST /recommendations now (new = not in the list before):")
        for line in list_lines(self.api.recommend(user), before):
            self.say(line)
        self.say(stored_list_line(self.lists, user, self.titles))

    def _title(self, item: str) -> str:
        return self.titles.get(item, item)
