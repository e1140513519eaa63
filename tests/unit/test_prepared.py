"""Training data prepared on disk equals the in-memory definition, row for row.

Why: preparation stitches, filters and sorts one chunk or one bucket at a time so that a FULL
run's memory does not grow with the data; what it produces must be exactly what
`select(to_interactions(...))` gives in memory, whatever the chunking and bucketing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from worker.data import prepared
from worker.data.cache import RecordColumns, concat, to_interactions
from worker.data.interactions import Interactions
from worker.data.selection import select
from worker.settings import WorkerSettings

FIELDS = ["DEVICE"]


def random_chunk(rng: np.random.Generator, rows: int, first_time: int) -> RecordColumns:
    """Rows of 40 users and 15 sessions (anonymous rows use the session id as user id; most
    sessions log in, one of them as two users, three never), 60 items, two event types or
    none, a DEVICE or none, values or none, and equal timestamps now and then."""
    users = [f"user-{n}" for n in range(40)]
    sessions = [f"session-{n}" for n in range(15)]
    strings = [*users, *sessions, *(f"item-{n}" for n in range(60)), "click", "buy", "tv", "web"]
    code = {text: index for index, text in enumerate(strings)}
    session = rng.integers(-1, 15, rows)
    anonymous = (session >= 0) & (rng.random(rows) < 0.4)
    user = np.where(anonymous, 40 + session, rng.integers(0, 40, rows))
    user = np.where((session == 3) & ~anonymous, rng.choice([5, 6], rows), user)
    session = np.where((session >= 12) & ~anonymous, -1, session)  # never logs in
    item = rng.integers(0, 60, rows) + code["item-0"]
    event_type = rng.choice([-1, code["click"], code["buy"]], rows)
    device = rng.choice([-1, code["tv"], code["web"]], rows)
    order = rng.permutation(len(strings))  # each chunk numbers its strings its own way
    renumber = np.argsort(order)
    codes = {
        "USER_ID": user,
        "ITEM_ID": item,
        "EVENT_TYPE": event_type,
        "SESSION_ID": np.where(session >= 0, 40 + session, -1),
        "DEVICE": device,
    }
    return RecordColumns(
        [strings[index] for index in order],
        {
            name: np.where(values >= 0, renumber[np.maximum(values, 0)], -1).astype(np.int32)
            for name, values in codes.items()
        },
        first_time + rng.integers(0, 50, rows).astype(np.int64) * 10,
        np.where(rng.random(rows) < 0.8, rng.random(rows), np.nan).astype(np.float32),
        np.zeros(rows, np.uint64),
    )


def assert_same(found: Interactions, expected: Interactions) -> None:
    for name in ("user", "item", "timestamp", "event_type", "event_value"):
        np.testing.assert_array_equal(getattr(found, name), getattr(expected, name), name)
    for name in FIELDS:
        np.testing.assert_array_equal(found.context[name], expected.context[name], name)
    assert found.users == expected.users and found.items == expected.items
    assert found.event_types == expected.event_types
    assert found.context_values == expected.context_values


@pytest.mark.parametrize(
    "settings",
    [
        WorkerSettings(),
        WorkerSettings(
            training_event_types=["click"],
            training_event_value_threshold=0.3,
            min_user_history_length_percentile=0.1,
            max_user_history_length_percentile=0.9,
        ),
    ],
    ids=["defaults", "every-filter"],
)
def test_prepared_data_equals_the_in_memory_selection(
    settings: WorkerSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared, "BUCKET_ROWS", 97)  # many buckets
    rng = np.random.default_rng(1)
    chunks = [random_chunk(rng, rows, 1000 * index) for index, rows in enumerate([300, 1, 450])]

    def read() -> Iterator[RecordColumns]:
        return iter(chunks)

    found, summary = prepared.prepare(read, FIELDS, settings, tmp_path / "prepared")
    expected, expected_summary = select(to_interactions(concat(chunks), FIELDS), settings)
    assert_same(found, expected.compact())
    assert summary == expected_summary
    assert isinstance(found.user, np.memmap) and not found.user.flags.writeable


def test_no_rows_prepare_to_empty_data(tmp_path: Path) -> None:
    empty = random_chunk(np.random.default_rng(2), 0, 0)
    found, summary = prepared.prepare(lambda: iter([empty]), FIELDS, WorkerSettings(), tmp_path)
    assert len(found) == 0 and summary.rows_kept == 0 and found.users == []
