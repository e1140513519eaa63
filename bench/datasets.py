"""The quality benchmarks' datasets by name: MovieLens-100K and Amazon Video Games."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.movielens import load_ml100k
from bench.video_games import load_video_games
from worker.data.interactions import Interactions

LOADERS: dict[str, Callable[[], Interactions]] = {
    "ml-100k": load_ml100k,
    "video": load_video_games,
}


def load(name: str) -> Interactions:
    """The named dataset (one of LOADERS) as Interactions."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}: one of {sorted(LOADERS)}") from None
    return loader()
