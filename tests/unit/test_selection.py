"""Personalize's training-data choices on hand-made Interactions: which rows each filter
keeps, where the history-length percentile bounds fall, and the minimum-data refusal."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from worker.data.interactions import Interactions, from_rows
from worker.data.selection import (
    by_event_type,
    by_event_value,
    by_history_length,
    check_minimum,
    select,
)
from worker.exceptions import NotEnoughDataError
from worker.settings import WorkerSettings


def row(user: str, item: str, ts: int, kind: str = "click", value: float | None = None) -> dict:
    return {
        "USER_ID": user,
        "ITEM_ID": item,
        "TIMESTAMP": ts,
        "EVENT_TYPE": kind,
        "EVENT_VALUE": value,
    }


def users_with_lengths(lengths: list[int]) -> Interactions:
    """User `u<n>` has lengths[n] click rows."""
    return from_rows(
        row(f"u{n}", f"i{k}", k) for n, length in enumerate(lengths) for k in range(length)
    )


def kept(data: Interactions, column: str = "item") -> list[Any]:
    if column == "user":
        return sorted({data.users[code] for code in data.user})
    return [data.items[code] for code in data.item]


def settings(**values: Any) -> WorkerSettings:
    return WorkerSettings(**values)


def test_event_types_keep_only_the_chosen_ones_and_empty_keeps_all() -> None:
    data = from_rows([row("u", "a", 1, "click"), row("u", "b", 2, "buy"), row("u", "c", 3, "view")])
    assert kept(by_event_type(data, ["buy", "view"])) == ["b", "c"]
    assert kept(by_event_type(data, [])) == ["a", "b", "c"]
    assert kept(by_event_type(data, ["unknown"])) == []


def test_event_value_threshold_is_inclusive_and_drops_events_without_a_value() -> None:
    data = from_rows(
        [row("u", "a", 1, value=0.5), row("u", "b", 2, value=1.0), row("u", "c", 3, value=None)]
    )
    assert kept(by_event_value(data, 1.0)) == ["b"]
    assert kept(by_event_value(data, 0.0)) == ["a", "b"]
    assert kept(by_event_value(data, None)) == ["a", "b", "c"]


def test_max_percentile_drops_the_longest_history_and_keeps_the_boundary() -> None:
    data = users_with_lengths(list(range(1, 101)))  # u0 has 1 row ... u99 has 100
    selected, (low, high) = by_history_length(data, 0.0, 0.99)
    assert (low, high) == (1.0, pytest.approx(99.01))
    assert "u99" not in kept(selected, "user")
    assert "u98" in kept(selected, "user")  # 99 rows: under the bound
    assert len(selected) == sum(range(1, 100))


def test_min_percentile_drops_short_histories_below_the_interpolated_bound() -> None:
    data = users_with_lengths(list(range(1, 101)))
    selected, (low, _) = by_history_length(data, 0.1, 1.0)
    assert low == pytest.approx(10.9)
    assert kept(selected, "user") == sorted(f"u{n}" for n in range(10, 100))


def test_ties_at_a_bound_are_never_split() -> None:
    # Nine users of length 5 and one of length 50: the 0.5 quantile is 5, every 5 is kept.
    data = users_with_lengths([5] * 9 + [50])
    selected, (_, high) = by_history_length(data, 0.0, 0.5)
    assert high == 5.0
    assert kept(selected, "user") == sorted(f"u{n}" for n in range(9))


def test_percentiles_are_taken_after_the_type_filter() -> None:
    # u0 has 100 views but only 3 clicks: after keeping clicks it is not the outlier.
    rows = [row("u0", f"v{k}", k, "view") for k in range(100)]
    rows += [row(f"u{n}", f"i{k}", k) for n in range(10) for k in range(3 if n == 0 else 3 + n)]
    data, summary = select(from_rows(rows), settings(training_event_types=["click"]))
    assert summary.dropped_event_type == 100
    assert summary.users_dropped_long == 1
    assert "u9" not in kept(data, "user")  # 12 clicks: the longest after the filter
    assert "u0" in kept(data, "user")


def test_select_reports_what_each_step_dropped() -> None:
    rows = [
        row(f"u{n}", f"i{k}", k, value=float(k % 2)) for n in range(4) for k in range(2 * n + 2)
    ]
    rows.append(row("u0", "x", 99, "buy", 1.0))
    data, summary = select(
        from_rows(rows),
        settings(
            training_event_types=["click"],
            training_event_value_threshold=1.0,
            min_user_history_length_percentile=0.3,
            max_user_history_length_percentile=0.7,
        ),
    )
    # clicks with value 1.0 per user: u0 1, u1 2, u2 3, u3 4 -> bounds 1.9 and 3.1
    assert summary.rows_read == 2 + 4 + 6 + 8 + 1
    assert (summary.dropped_event_type, summary.dropped_event_value) == (1, 10)
    assert (summary.users_dropped_short, summary.dropped_short_history) == (1, 1)
    assert (summary.users_dropped_long, summary.dropped_long_history) == (1, 4)
    assert kept(data, "user") == ["u1", "u2"]
    assert summary.rows_kept == len(data) == 5
    assert np.all(data.event_value >= 1.0)


def test_minimum_refuses_fewer_than_1000_interactions_with_both_counts() -> None:
    data = users_with_lengths([37] * 27)  # 999 rows, 27 users with 2+
    with pytest.raises(NotEnoughDataError) as refused:
        check_minimum(data)
    message = str(refused.value)
    assert "999 interactions and 27 users" in message
    assert "at least 1,000 interactions and 25 such users" in message


def test_minimum_refuses_fewer_than_25_users_with_two_interactions() -> None:
    # 24 users with 40 rows, 100 users with a single row: 1,060 rows but 24 active users.
    data = users_with_lengths([40] * 24 + [1] * 100)
    assert len(data) == 1060
    with pytest.raises(NotEnoughDataError, match="1,060 interactions and 24 users"):
        check_minimum(data)


def test_minimum_accepts_exactly_the_required_amounts() -> None:
    check_minimum(users_with_lengths([40] * 25))  # 1,000 rows, 25 users
