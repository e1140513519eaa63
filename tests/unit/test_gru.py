"""The hand-written gradients of worker/gru.py against central finite differences.

Run in float64 on a tiny model (7 items, 4 hidden units, a context field, padding and a
sampled candidate set), so a wrong sign or a missing term in any parameter's gradient shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from connector.model import network
from worker import gru


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


@pytest.mark.parametrize("candidates", [None, np.array([1, 2, 3, 5, 6, 7])])
def test_every_gradient_matches_finite_differences(candidates: np.ndarray | None) -> None:
    params = tiny_params(np.random.default_rng(3))
    batch = tiny_batch()

    def loss() -> float:
        return gru.loss_and_gradients(params, batch, candidates)[0]

    _, analytic = gru.loss_and_gradients(params, batch, candidates)
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
