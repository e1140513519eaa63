"""Amazon Video Games (the SASRec paper's preprocessed set) for the quality benchmarks.

The file holds one `user item` line per interaction, each user's lines in time order and no
timestamps. Each user's k-th interaction gets TIMESTAMP = START + k days: the order is all
the data says, and a day apart keeps item ages (exploration's cut-off) and recency weights
on the scale of real catalogues instead of putting the whole dataset inside one minute.
Every row is one "review" event.

The file is not in this repository: pass its path, or set STREAMREC_VIDEO_GAMES, or keep the
shared copy beside the checkout (../shared/data/amazon-video-games/Video.txt.gz).

    python bench/video_games.py     # prints the dataset's size
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.data.interactions import Interactions, from_rows

ROOT = Path(__file__).resolve().parents[1]
SHARED_COPY = ROOT.parent / "shared" / "data" / "amazon-video-games" / "Video.txt.gz"
EVENT_TYPE = "review"
START = 1_420_070_400  # 2015-01-01T00:00:00Z
STEP = 86_400  # one day between a user's consecutive interactions


class VideoGamesUnavailableError(RuntimeError):
    """The dataset file is not where it was looked for."""


def video_games_path(path: Path | None = None) -> Path:
    """The dataset file: `path`, else STREAMREC_VIDEO_GAMES, else the shared copy."""
    chosen = path or Path(os.environ.get("STREAMREC_VIDEO_GAMES", SHARED_COPY))
    if not chosen.is_file():
        raise VideoGamesUnavailableError(
            f"{chosen} not found: pass the path of Video.txt.gz or set STREAMREC_VIDEO_GAMES"
        )
    return chosen


def read_rows(path: Path | None = None) -> Iterator[dict[str, object]]:
    """Interactions dataset rows in file order (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE)."""
    position: dict[str, int] = {}
    with gzip.open(video_games_path(path), "rt", encoding="ascii") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if len(fields) != 2:
                raise VideoGamesUnavailableError(f"line {number}: expected 'user item': {line!r}")
            user, item = fields
            step = position.get(user, 0)
            position[user] = step + 1
            yield {
                "USER_ID": user,
                "ITEM_ID": item,
                "TIMESTAMP": START + step * STEP,
                "EVENT_TYPE": EVENT_TYPE,
            }


def load_video_games(path: Path | None = None) -> Interactions:
    """The whole dataset as Interactions."""
    return from_rows(read_rows(path))


if __name__ == "__main__":
    data = load_video_games()
    print(f"{video_games_path()}: {len(data)} interactions, {len(data.users)} users, ", end="")
    print(f"{len(data.items)} items")
