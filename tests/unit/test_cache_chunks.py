"""The training-data cache's dedup of one chunk of records, without Kafka.

Why: an update reads its records a chunk at a time, so a repeat must be caught within a
chunk as well as against what earlier chunks and runs cached.
"""

from __future__ import annotations

import numpy as np

from worker.data.cache import _first_seen


def test_a_repeat_is_dropped_within_a_chunk_and_against_the_cache() -> None:
    hashes = np.array([5, 0, 7, 5, 0, 9, 7, 3], np.uint64)  # 0: no marker, never a repeat
    cached = np.array([3, 11], np.uint64)
    kept = _first_seen(hashes, cached)
    assert kept.tolist() == [True, True, True, False, True, True, False, False]


def test_an_empty_chunk_keeps_nothing() -> None:
    assert _first_seen(np.zeros(0, np.uint64), np.zeros(0, np.uint64)).tolist() == []
