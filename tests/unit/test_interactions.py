"""The columnar training data: ordering, selection and compaction of vocabularies."""

from __future__ import annotations

import numpy as np

from worker.data.interactions import from_rows, history_entries


def rows() -> list[dict[str, object]]:
    return [
        {"USER_ID": "b", "ITEM_ID": "x", "TIMESTAMP": 5, "EVENT_TYPE": "click", "DEVICE": "tv"},
        {"USER_ID": "a", "ITEM_ID": "y", "TIMESTAMP": 9},
        {"USER_ID": "b", "ITEM_ID": "z", "TIMESTAMP": 1},
        {"USER_ID": "a", "ITEM_ID": "x", "TIMESTAMP": 9},  # same time: arrival order kept
    ]


def test_rows_are_sorted_by_user_then_time_then_arrival() -> None:
    data = from_rows(rows(), ["DEVICE"])
    ordered = [(data.users[u], data.items[i]) for u, i in zip(data.user, data.item, strict=True)]
    assert ordered == [("b", "z"), ("b", "x"), ("a", "y"), ("a", "x")]
    entries = history_entries(data, slice(0, 2))
    assert [(e.item, e.event_type, e.context) for e in entries] == [
        ("z", None, {}),
        ("x", "click", {"DEVICE": "tv"}),
    ]


def test_compact_drops_users_and_items_without_rows_and_keeps_the_rows() -> None:
    data = from_rows(rows())
    only_b = data.select(data.user == data.users.index("b")).compact()
    assert only_b.users == ["b"] and sorted(only_b.items) == ["x", "z"]
    assert [only_b.items[i] for i in only_b.item] == ["z", "x"]
    assert only_b.timestamp.tolist() == [1, 5]
    assert np.all(np.diff(only_b.user) >= 0)
