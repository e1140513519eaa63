"""Training policy: reproducible with a seed, lazy item updates, the learning-rate schedule,
the item weight decay, the NaN guard, windows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from connector.model.model import Hyperparameters, Model
from worker.data.interactions import Interactions, from_rows
from worker.exceptions import ModelFitError
from worker.training import blocks, fit
from worker.training.fit import Adam, make_windows, rate_factor, train


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


def test_the_linear_schedule_falls_to_one_over_epochs_and_constant_stays() -> None:
    assert [rate_factor("linear", epoch, 4) for epoch in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert {rate_factor("constant", epoch, 4) for epoch in range(4)} == {1.0}
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        Hyperparameters(learning_rate_schedule="cosine")


def test_the_decay_factor_scales_the_step() -> None:
    full, half = ({"gru_w": np.zeros((2, 2), np.float64)} for _ in range(2))
    grads = {"gru_w": np.full((2, 2), 0.3)}
    Adam(full, 0.1).step(1.0, grads)
    decayed = Adam(half, 0.1)
    decayed.decay = 0.5
    decayed.step(1.0, grads)
    np.testing.assert_allclose(half["gru_w"], full["gru_w"] / 2)
    assert (full["gru_w"] < 0).all()


def test_weight_decay_shrinks_only_the_item_embeddings_a_step_moves() -> None:
    params = {
        "item_embeddings": np.ones((4, 2), np.float64),
        "item_bias": np.ones(4, np.float64),
        "gru_w": np.ones((2, 2), np.float64),
    }
    zero = {name: np.zeros_like(value) for name, value in params.items()}
    Adam(params, 0.1, item_weight_decay=0.5).step(1.0, zero, item_rows=np.array([1, 2]))
    np.testing.assert_allclose(params["item_embeddings"][:, 0], [1.0, 0.95, 0.95, 1.0])
    assert (params["item_bias"] == 1).all() and (params["gru_w"] == 1).all()


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


def test_a_windows_seen_before_is_its_users_earlier_items() -> None:
    data = from_rows(walks(users=3, length=10)).compact()
    windows = make_windows(data, bptt=4, recency_mask=False, rng=np.random.default_rng(1))
    rows = np.arange(len(windows.items))
    for most in (2, 256):
        batch = windows.batch(rows, seen_before=most)
        assert batch.seen_before is not None
        for row in rows:
            start, first = windows.start[row], windows.user_start[row]
            assert windows.items[row, 0] == data.item[start] + 1
            expected = data.item[max(first, start - most) : start] + 1
            seen = batch.seen_before[row]
            assert (seen[seen > 0] == expected).all()
    assert windows.batch(rows).seen_before is None


def test_leaving_rows_out_trains_the_model_of_the_data_without_them() -> None:
    data = from_rows(walks(items=40))
    held_out = np.array([11, 23, 100, 359])  # last rows of users, and rows inside sequences
    hyper = Hyperparameters(hidden_dimension=32, bptt=4, epochs=2)
    left_out = train(data, hyper, seed=3, excluded=held_out)
    removed = train(data.without(held_out), hyper, seed=3)
    assert left_out.items == removed.items
    for name, value in left_out.params.items():
        np.testing.assert_array_equal(value, removed.params[name], err_msg=name)


def test_blocks_of_whole_users_cover_every_prediction_once_per_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blocks, "BLOCK_ROWS", 50)  # 12 rows per user: blocks of 4 users
    data = from_rows(walks(users=30, length=12))
    rows = blocks.TrainingRows(data)
    assert [(block.start, block.stop) for block in rows.blocks] == [
        (start, min(start + 48, 360)) for start in range(0, 360, 48)
    ]
    seen: list[int] = []
    original = fit._steps

    def counted(*args: object, **kwargs: object) -> object:
        for loss, predictions in original(*args, **kwargs):  # type: ignore[arg-type]
            seen.append(predictions)
            yield loss, predictions

    monkeypatch.setattr(fit, "_steps", counted)
    train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=3), seed=1)
    assert sum(seen) == 3 * rows.predictions == 3 * 30 * 11


def test_big_data_plans_fewer_epochs_but_never_fewer_than_the_floor() -> None:
    hyper = Hyperparameters(epochs=20, max_positions=4_000_000)
    assert fit.epoch_count(100_000, hyper) == 20  # small data: the epochs setting
    assert fit.epoch_count(500_000, hyper) == 8  # about max_positions predictions
    assert fit.epoch_count(20_000_000, hyper) == fit.MIN_PASSES  # the floor, budget permitting
    assert fit.epoch_count(20_000_000, Hyperparameters(epochs=2)) == 2  # the setting wins


def test_a_budget_cuts_epochs_then_data_then_stops() -> None:
    assert fit.plan(1000, 5, capacity=6000) == (5, None)
    assert fit.plan(1000, 5, capacity=2500) == (2, None)
    assert fit.plan(1000, 5, capacity=250) == (1, 0.25)


def train_on_a_budget(
    data: Interactions, epochs: int, budget_seconds: float, clock: Callable[[], float]
) -> tuple[Model, list[tuple[int, int]]]:
    """A small model trained within a budget on `clock`; and the (epoch, epochs) reported."""
    reported: list[tuple[int, int]] = []
    hyper = Hyperparameters(hidden_dimension=32, bptt=4, epochs=epochs, batch_size=8)
    model = train(
        data,
        hyper,
        seed=1,
        budget_seconds=budget_seconds,
        clock=clock,
        progress=lambda epoch, epochs, _: reported.append((epoch, epochs)),
    )
    return model, reported


def test_a_run_stops_at_its_budget_after_fitting_its_plan_to_it() -> None:
    data = from_rows(walks(users=200, length=12, items=40))
    ticks = iter(range(1_000_000))

    def clock() -> float:  # one second per reading: the budget runs out after a few batches
        return float(next(ticks))

    model, reported = train_on_a_budget(data, epochs=20, budget_seconds=60, clock=clock)
    assert reported == [(1, 1)]  # replanned to one pass over the newest data, then stopped
    assert next(ticks) <= 70 and len(model.items) == 40
    assert all(np.isfinite(value).all() for value in model.params.values())


def test_the_time_spent_preparing_rows_does_not_count_as_training_speed() -> None:
    data = from_rows(walks(users=200, length=12, items=40))
    readings = [0.0, 1000.0]  # the budget's start; then training starts 1,000 s later
    now = [0.0]

    def clock() -> float:  # then each reading 10 ms after the one before
        now[0] = readings.pop(0) if readings else now[0] + 0.01
        return now[0]

    _, reported = train_on_a_budget(data, epochs=3, budget_seconds=2000, clock=clock)
    assert reported == [(1, 3), (2, 3), (3, 3)]  # fast batches: the planned epochs fit


def test_a_user_longer_than_a_block_is_a_block_alone() -> None:
    users = np.array([0, 0, 0, 0, 0, 1, 2, 2, 3])
    found = [(block.start, block.stop) for block in blocks._blocks(users, 3)]
    assert found == [(0, 5), (5, 8), (8, 9)]
