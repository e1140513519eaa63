"""The one retry policy: which errors are transient, and the waits between tries."""

from __future__ import annotations

import itertools
import time

import pytest
import redis

from connector.exceptions import (
    InvalidEventError,
    KafkaUnavailableError,
    ListRefreshUnavailableError,
    RedisUnavailableError,
)
from connector.retry import TRANSIENT, Backoff


def test_waits_grow_to_their_cap_and_never_end_by_default() -> None:
    waits = list(itertools.islice(Backoff(first=0.5, most=30.0).delays(), 9))
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_number_of_tries_ends_the_series() -> None:
    assert list(Backoff(first=0.2, most=0.8, tries=4).delays()) == [0.2, 0.4, 0.8, 0.8]


def test_a_deadline_counts_from_when_the_series_is_asked_for() -> None:
    delays = Backoff(first=0.01, most=0.01, seconds=0.05).delays()
    time.sleep(0.06)  # the first try took longer than the deadline
    assert list(delays) == []


def test_a_deadline_ends_the_series() -> None:
    started = time.monotonic()
    waits = 0
    for delay in Backoff(first=0.01, most=0.01, seconds=0.1).delays():
        time.sleep(delay)
        waits += 1
    assert 0.1 <= time.monotonic() - started < 1.0 and 1 <= waits <= 10


@pytest.mark.parametrize(
    "error",
    [
        KafkaUnavailableError("broker away"),
        RedisUnavailableError("refused"),
        ListRefreshUnavailableError("process died"),
        redis.ConnectionError("reset"),
        redis.TimeoutError("slow"),
    ],
)
def test_faults_that_pass_are_transient(error: Exception) -> None:
    assert isinstance(error, TRANSIENT)


def test_bad_input_is_not_transient() -> None:
    assert not isinstance(InvalidEventError("bad record"), TRANSIENT)
    assert not isinstance(ValueError("bug"), TRANSIENT)
