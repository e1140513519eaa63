"""Training policy: reproducible with a seed, lazy item updates, the NaN guard, windows."""

from __future__ import annotations

import numpy as np
import pytest

from connector.model.model import Hyperparameters
from worker.exceptions import ModelFitError
from worker.interactions import from_rows
from worker.training import Adam, make_windows, train


def walks(users: int = 30, length: int = 12, items: int = 15) -> list[dict[str, object]]:
    return [
        {"USER_ID": f"u{u}", "ITEM_ID": f"i{(u + step) % items}", "TIMESTAMP": step}
        for u in range(users)
        for step in range(length)
    ]


def test_the_same_seed_gives_the_same_model_and_another_seed_does_not() -> None:
    data = from_rows(walks())
    hyper = Hyperparameters(hidden_dimension=32, bptt=4, epochs=2)
    first, again, other = (
        train(data, hyper, seed=5),
        train(data, hyper, seed=5),
        train(data, hyper, seed=6),
    )
    for name, value in first.params.items():
        np.testing.assert_array_equal(value, again.params[name], err_msg=name)
    assert not np.array_equal(first.params["gru_w"], other.params["gru_w"])


def test_lazy_adam_moves_only_the_given_item_rows() -> None:
    params = {"item_embeddings": np.ones((5, 2), np.float32), "gru_w": np.ones((2, 2), np.float32)}
    grads = {name: np.ones_like(value) for name, value in params.items()}
    Adam(params, 0.1).step(1.0, grads, item_rows=np.array([1, 3]))
    moved = (params["item_embeddings"] != 1).any(axis=1)
    assert moved.tolist() == [False, True, False, True, False]
    assert (params["gru_w"] != 1).all()


def test_a_non_finite_loss_is_skipped_then_training_gives_up() -> None:
    params = {"gru_w": np.ones((2, 2), np.float32)}
    grads = {"gru_w": np.ones((2, 2), np.float32)}
    adam = Adam(params, 0.1)
    for _ in range(3):
        adam.step(float("nan"), grads)
    assert (params["gru_w"] == 1).all() and adam.learning_rate == pytest.approx(0.1 / 8)
    with pytest.raises(ModelFitError, match="diverged"):
        adam.step(float("inf"), grads)


def test_windows_hold_every_next_item_prediction_once() -> None:
    data = from_rows(walks(users=3, length=10))
    windows = make_windows(data, bptt=4, recency_mask=False, rng=np.random.default_rng(1))
    assert int((windows.targets > 0).sum()) == 3 * 9  # each user: 10 events, 9 predictions
    assert windows.items.shape[1] == 4
    # within a window the target of a step is the input of the next step
    for items, targets in zip(windows.items, windows.targets, strict=True):
        steps = int((targets > 0).sum())
        assert (items[1:steps] == targets[: steps - 1]).all()
