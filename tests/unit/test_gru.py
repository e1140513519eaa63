"""The hand-written gradients of worker/training/gru.py against central finite differences.

Run in float64 on a tiny model (7 items, 4 hidden units, a context field, padding and a
sampled candidate set), so a wrong sign or a missing term in any parameter's gradient shows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from connector.model import network
from connector.model.history import HistoryEntry
from connector.model.model import Hyperparameters, Model
from worker.training import fit, gru


def tiny_params(rng: np.random.Generator, items: int = 7, hidden: int = 4) -> network.Params:
    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.5, shape)

    return {
        "item_embeddings": normal(items + 1, hidden),
        "item_bias": normal(items + 1),
        "type_embeddings": normal(3, hidden),
        "context_DEVICE": normal(4, hidden),
        "gru_w": normal(hidden, 3 * hidden),
        "gru_u": normal(hidden, 3 * hidden),
        "gru_b": normal(3 * hidden),
        "out_w": normal(hidden, hidden),
        "out_b": normal(hidden),
        "recent_w": normal(3, hidden),
    }


def tiny_batch() -> network.Batch:
    items = np.array([[1, 3, 2, 5], [4, 6, 0, 0]])
    return network.Batch(
        items=items,
        types=np.array([[1, 2, 1, 1], [2, 0, 0, 0]]),
        contexts={"DEVICE": np.array([[1, 2, 3, 0], [3, 1, 0, 0]])},
        targets=np.array([[3, 2, 5, 7], [6, 1, 0, 0]]),
        weights=np.array([[1.0, 0.5, 2.0, 1.0], [1.0, 1.5, 0.0, 0.0]]),
    )


def numeric_gradient(params: network.Params, name: str, loss: callable) -> np.ndarray:  # type: ignore[valid-type]
    gradient = np.zeros_like(params[name])
    step = 1e-6
    for index in np.ndindex(params[name].shape):
        original = params[name][index]
        params[name][index] = original + step
        above = loss()
        params[name][index] = original - step
        below = loss()
        params[name][index] = original
        gradient[index] = (above - below) / (2 * step)
    return gradient


@pytest.mark.parametrize("mask_seen", [True, False])
@pytest.mark.parametrize("recent", [True, False])
@pytest.mark.parametrize("candidates", [None, np.array([1, 2, 3, 5, 6, 7])])
def test_every_gradient_matches_finite_differences(
    candidates: np.ndarray | None, recent: bool, mask_seen: bool
) -> None:
    params = tiny_params(np.random.default_rng(3))
    if not recent:  # a model without the recent-items term (recent_items = 0)
        del params["recent_w"]
    batch = tiny_batch()
    if mask_seen:  # items of the users' histories before the windows too
        batch = dataclasses.replace(batch, seen_before=np.array([[0, 7], [2, 5]]))

    def loss() -> float:
        return gru.loss_and_gradients(params, batch, candidates, mask_seen=mask_seen)[0]

    _, analytic = gru.loss_and_gradients(params, batch, candidates, mask_seen=mask_seen)
    for name in params:
        expected = numeric_gradient(params, name, loss)
        np.testing.assert_allclose(analytic[name], expected, rtol=1e-5, atol=1e-7, err_msg=name)


def test_padding_steps_change_nothing() -> None:
    params = tiny_params(np.random.default_rng(4))
    short = tiny_batch()
    longer = network.Batch(
        items=np.pad(short.items, ((0, 0), (0, 2))),
        types=np.pad(short.types, ((0, 0), (0, 2))),
        contexts={k: np.pad(v, ((0, 0), (0, 2))) for k, v in short.contexts.items()},
        targets=np.pad(short.targets, ((0, 0), (0, 2))),
        weights=np.pad(short.weights, ((0, 0), (0, 2))),
    )
    loss_short, grads_short = gru.loss_and_gradients(params, short)
    loss_long, grads_long = gru.loss_and_gradients(params, longer)
    assert loss_short == pytest.approx(loss_long)
    for name in params:
        np.testing.assert_allclose(grads_short[name], grads_long[name], atol=1e-12)
    assert not grads_short["item_embeddings"][0].any()  # padding is never learned as input


def test_gradients_with_dropout_match_finite_differences() -> None:
    params = tiny_params(np.random.default_rng(5))
    batch = tiny_batch()

    def loss_and_grads() -> tuple[float, network.Params]:  # the same dropout mask each call
        return gru.loss_and_gradients(params, batch, None, 0.3, np.random.default_rng(9))

    _, analytic = loss_and_grads()
    for name in ("item_embeddings", "recent_w", "gru_w", "context_DEVICE"):
        expected = numeric_gradient(params, name, lambda: loss_and_grads()[0])
        np.testing.assert_allclose(analytic[name], expected, rtol=1e-5, atol=1e-7, err_msg=name)


def test_serving_scores_are_the_trained_scores() -> None:
    """Model.user_states (serving) gives the query the loss is computed from: the loss of
    one target after a history is minus the log softmax of the served scores."""
    params = tiny_params(np.random.default_rng(6))
    model = Model(
        items=[f"i{n}" for n in range(1, 8)],
        event_types=["", "click", "buy"],
        context_values={"DEVICE": ["", "a", "b", "c"]},
        params=params,
        hyperparameters=Hyperparameters(hidden_dimension=32, bptt=4, recent_items=3),
    )
    history = [
        HistoryEntry("i1", "click", context={"DEVICE": "a"}),
        HistoryEntry("i3", "buy", context={"DEVICE": "b"}),
        HistoryEntry("i2", "click", context={"DEVICE": "c"}),
    ]
    batch = network.Batch(
        items=np.array([[1, 3, 2]]),
        types=np.array([[1, 2, 1]]),
        contexts={"DEVICE": np.array([[1, 2, 3]])},
        targets=np.array([[0, 0, 5]]),
        weights=np.array([[0.0, 0.0, 1.0]]),
    )
    loss, _ = gru.loss_and_gradients(params, batch)
    scores = model.score_histories([history])[0].astype(np.float64)
    log_softmax = scores - scores.max() - np.log(np.exp(scores - scores.max()).sum())
    assert loss == pytest.approx(-log_softmax[4], rel=1e-4)
    assert model.user_states([[]]).shape == (1, 4)  # an empty history still has a state


@pytest.mark.parametrize("candidates", [None, np.array([1, 2, 3, 5, 6, 7])])
def test_mask_seen_leaves_out_the_window_items_before_each_target(
    candidates: np.ndarray | None,
) -> None:
    """The loss with seen items masked is the softmax over the other candidates."""
    params = tiny_params(np.random.default_rng(8))
    del params["recent_w"]
    items, target = np.array([[1, 3, 2]]), 3  # a repeat: 3 was seen and is the target
    batch = network.Batch(
        items=items,
        types=np.zeros_like(items),
        contexts={"DEVICE": np.zeros_like(items)},
        targets=np.array([[0, 0, target]]),
        weights=np.array([[0.0, 0.0, 1.0]]),
    )
    loss, _ = gru.loss_and_gradients(params, batch, candidates, mask_seen=True)
    cache = network.run(params, network.embed(params, items, batch.types, batch.contexts))
    query = network.output(params, cache.h[0, 3])
    columns = np.arange(1, 8) if candidates is None else candidates
    logits = params["item_embeddings"][columns] @ query + params["item_bias"][columns]
    kept = ~np.isin(columns, [1, 2])  # seen 1, 3 and 2; 3 is the target, so it stays
    expected = -logits[columns == target][0] + np.log(np.exp(logits[kept]).sum())
    assert loss == pytest.approx(expected)
    before = dataclasses.replace(batch, seen_before=np.array([[0, 6]]))  # seen earlier: 6
    loss_before, _ = gru.loss_and_gradients(params, before, candidates, mask_seen=True)
    kept &= columns != 6
    expected = -logits[columns == target][0] + np.log(np.exp(logits[kept]).sum())
    assert loss_before == pytest.approx(expected)


def test_log_expected_shifts_the_sampled_logits() -> None:
    """The sampled softmax's correction: subtracting log expected counts is the same as
    lowering those items' biases by them."""
    params = tiny_params(np.random.default_rng(10))
    batch, candidates = tiny_batch(), np.array([1, 2, 3, 5, 6, 7])
    log_expected = np.linspace(-1.0, 1.0, len(candidates))
    loss, grads = gru.loss_and_gradients(params, batch, candidates, log_expected=log_expected)
    shifted = {**params, "item_bias": params["item_bias"].copy()}
    shifted["item_bias"][candidates] -= log_expected
    loss_shifted, grads_shifted = gru.loss_and_gradients(shifted, batch, candidates)
    assert loss == pytest.approx(loss_shifted)
    np.testing.assert_allclose(grads["gru_w"], grads_shifted["gru_w"])


def test_reused_gradient_buffers_give_each_step_fresh_gradients() -> None:
    """Training reuses its gradient arrays and clears only the item rows a sampled step
    touched; the next step's gradients must still equal ones computed from zeros."""
    params = tiny_params(np.random.default_rng(5))
    buffers = fit.GradientBuffers(params)
    first, second = tiny_batch(), dataclasses.replace(tiny_batch(), items=tiny_batch().items[::-1])
    candidates = np.array([1, 2, 3, 5, 6, 7])
    for batch in (first, second):
        expected = gru.loss_and_gradients(params, batch, candidates)[1]
        reused = gru.loss_and_gradients(params, batch, candidates, into=buffers.arrays)[1]
        for name in params:
            np.testing.assert_array_equal(reused[name], expected[name], err_msg=name)
        buffers.clear(np.union1d(candidates, batch.items.ravel()))
        for name, array in buffers.arrays.items():
            assert not array.any(), f"{name} not cleared"
