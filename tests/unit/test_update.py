"""UPDATE mode adds new items to a trained model without retraining it."""

from __future__ import annotations

import numpy as np
import pytest

from connector.model.history import HistoryEntry
from connector.model.model import Hyperparameters
from worker.data import interactions
from worker.data.interactions import from_rows
from worker.training import update
from worker.training.fit import train
from worker.training.update import add_items


def chain_rows(items: int, users: int, length: int, seed: int) -> list[dict[str, object]]:
    """Users walk a chain of items: after item k comes item k+1 (mod `items`)."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for user in range(users):
        item = int(rng.integers(0, items))
        for step in range(length):
            rows.append({"USER_ID": f"u{user}", "ITEM_ID": f"i{item}", "TIMESTAMP": step})
            item = (item + 1) % items
    return rows


def test_new_items_get_rows_and_known_items_keep_theirs() -> None:
    old = from_rows(chain_rows(20, 60, 15, seed=1))
    model = train(old, Hyperparameters(hidden_dimension=32, bptt=4, epochs=8), seed=2)
    # a new item "n" always follows i5 in the new data
    rows = chain_rows(20, 60, 15, seed=3)
    rows += [
        row
        for user in range(40)
        for row in (
            {"USER_ID": f"v{user}", "ITEM_ID": "i5", "TIMESTAMP": 100},
            {"USER_ID": f"v{user}", "ITEM_ID": "n", "TIMESTAMP": 101},
        )
    ]
    updated, added = add_items(model, from_rows(rows), catalog=["m"], metadata={})
    assert added == ["n", "m"]
    assert updated.items == [*model.items, "n", "m"]
    np.testing.assert_array_equal(
        updated.params["item_embeddings"][: len(model.items) + 1], model.params["item_embeddings"]
    )
    scores = updated.score_histories([[HistoryEntry("i4"), HistoryEntry("i5")]])[0]
    ranking = [
        updated.items[i] for i in np.argsort(-scores) if updated.items[i] not in ("i4", "i5")
    ]
    # placed where the model expects users to go after i5, "n" ranks among the first few of
    # 20 unseen items there; "m", placed from nothing, does not
    assert ranking.index("n") < 5
    assert ranking.index("n") < ranking.index("m")
    # and it is not everyone's favourite: elsewhere in the chain it stays out of the top
    for start in (9, 14):
        elsewhere = [HistoryEntry(f"i{start}"), HistoryEntry(f"i{start + 1}")]
        top = np.argsort(-updated.score_histories([elsewhere])[0])[:3]
        assert "n" not in [updated.items[i] for i in top]


def test_no_new_items_returns_the_same_model() -> None:
    data = from_rows(chain_rows(10, 30, 10, seed=4))
    model = train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=2), seed=1)
    same, added = add_items(model, data)
    assert same is model and added == []


def test_items_only_in_the_vocabulary_are_not_added() -> None:
    data = from_rows(
        chain_rows(10, 30, 10, seed=4) + [{"USER_ID": "x", "ITEM_ID": "gone", "TIMESTAMP": 0}]
    )
    without = data.select(data.item != data.items.index("gone"))  # e.g. filtered by selection
    trained_without = train(without, Hyperparameters(hidden_dimension=32, bptt=4, epochs=2), seed=1)
    assert "gone" in without.items and "gone" not in trained_without.items
    _, added = add_items(trained_without, without)
    assert added == []  # in the vocabulary, but no row: nothing to place it from


def test_placement_is_the_same_in_batches_and_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    model = train(
        from_rows(chain_rows(20, 60, 15, seed=1)), Hyperparameters(hidden_dimension=32, bptt=4)
    )
    rows = chain_rows(20, 60, 15, seed=3) + [
        {"USER_ID": f"v{user}", "ITEM_ID": item, "TIMESTAMP": 100 + step}
        for user in range(30)
        for step, item in enumerate(["i5", "n", "i7", "o", "i1"])
    ]
    data = from_rows(rows)
    whole, added = add_items(model, data)
    monkeypatch.setattr(update, "STATES_PER_BATCH", 7)
    monkeypatch.setattr(interactions, "ROW_BLOCK", 13)  # blocks cut users apart
    parts, _ = add_items(model, data)
    assert added == ["n", "o"]
    np.testing.assert_allclose(
        parts.params["item_embeddings"], whole.params["item_embeddings"], rtol=1e-5
    )
