"""The network's backward pass and loss, for training: softmax cross-entropy of the next item
against tied item embeddings, back-propagated through time by hand in numpy.

Kept free of training policy (batching, optimiser, schedules) so its gradients can be
checked numerically on a tiny model (tests/unit/test_gru.py). The forward pass it
differentiates is connector/model/network.py, the one serving runs.
"""

from __future__ import annotations

import numpy as np

from connector.model.network import Batch, Cache, Params, embed, output, run


def loss_and_gradients(
    params: Params,
    batch: Batch,
    candidates: np.ndarray | None = None,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[float, Params]:
    """Weighted softmax cross-entropy of each target against `candidates` (all items when
    None; the targets must be among the candidates), and its gradient for every parameter."""
    x = embed(params, batch.items, batch.types, batch.contexts)
    keep_in = _dropout_mask(x.shape, dropout, rng, x.dtype)
    cache = run(params, x * keep_in if keep_in is not None else x)
    cache.keep_in = keep_in
    valid = batch.targets > 0
    states = cache.h[:, 1:][valid]  # (N, H)
    weights = batch.weights[valid] / max(float(batch.weights[valid].sum()), 1e-12)
    loss, d_states, grads = _softmax_loss(params, states, batch.targets[valid], weights, candidates)
    d_h = np.zeros_like(cache.h[:, 1:])
    d_h[valid] = d_states
    d_x = _backward(params, cache, d_h, grads)
    if keep_in is not None:
        d_x = d_x * keep_in
    _embedding_gradients(params, batch, d_x * (batch.items > 0)[..., None], grads)
    return loss, grads


def _dropout_mask(
    shape: tuple[int, ...], rate: float, rng: np.random.Generator | None, dtype: np.dtype
) -> np.ndarray | None:
    if rate <= 0 or rng is None:
        return None
    return ((rng.random(shape) >= rate) / (1.0 - rate)).astype(dtype)


def _softmax_loss(
    params: Params,
    states: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    candidates: np.ndarray | None,
) -> tuple[float, np.ndarray, Params]:
    columns = np.arange(1, len(params["item_embeddings"])) if candidates is None else candidates
    table = params["item_embeddings"][columns]  # (C, H)
    query = output(params, states)  # (N, H)
    logits = query @ table.T + params["item_bias"][columns]
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    target_columns = np.searchsorted(columns, targets)
    rows = np.arange(len(targets))
    loss = float(-(weights * np.log(probabilities[rows, target_columns] + 1e-30)).sum())
    d_logits = probabilities
    d_logits[rows, target_columns] -= 1.0
    d_logits *= weights[:, None]
    grads = {name: np.zeros_like(value) for name, value in params.items()}
    np.add.at(grads["item_embeddings"], columns, d_logits.T @ query)
    np.add.at(grads["item_bias"], columns, d_logits.sum(axis=0))
    d_query = d_logits @ table
    grads["out_w"] = states.T @ d_query
    grads["out_b"] = d_query.sum(axis=0)
    return loss, d_query @ params["out_w"].T, grads


def _backward(params: Params, cache: Cache, d_h_out: np.ndarray, grads: Params) -> np.ndarray:
    """Back-propagation through time; returns the gradient of the inputs x (B, T, H)."""
    batch, steps, hidden = cache.x.shape
    u_zr, u_n = params["gru_u"][:, : 2 * hidden], params["gru_u"][:, 2 * hidden :]
    d_projected = np.empty((batch, steps, 3 * hidden), dtype=cache.x.dtype)
    d_u = np.zeros_like(params["gru_u"])
    d_next = np.zeros((batch, hidden), dtype=cache.x.dtype)
    for t in reversed(range(steps)):
        h_prev, z, r, n = cache.h[:, t], cache.z[:, t], cache.r[:, t], cache.n[:, t]
        d_h = d_h_out[:, t] + d_next
        d_a_n = d_h * (1 - z) * (1 - n * n)
        d_u[:, 2 * hidden :] += (r * h_prev).T @ d_a_n
        d_rh = d_a_n @ u_n.T
        d_gates = np.concatenate(
            [d_h * (h_prev - n) * z * (1 - z), d_rh * h_prev * r * (1 - r)], axis=1
        )
        d_u[:, : 2 * hidden] += h_prev.T @ d_gates
        d_next = d_h * z + d_rh * r + d_gates @ u_zr.T
        d_projected[:, t, : 2 * hidden] = d_gates
        d_projected[:, t, 2 * hidden :] = d_a_n
    flat = d_projected.reshape(-1, 3 * hidden)
    grads["gru_u"] = d_u
    grads["gru_w"] = cache.x.reshape(-1, hidden).T @ flat
    grads["gru_b"] = flat.sum(axis=0)
    return d_projected @ params["gru_w"].T


def _embedding_gradients(params: Params, batch: Batch, d_x: np.ndarray, grads: Params) -> None:
    hidden = d_x.shape[-1]
    flat = d_x.reshape(-1, hidden)
    np.add.at(grads["item_embeddings"], batch.items.ravel(), flat)
    np.add.at(grads["type_embeddings"], batch.types.ravel(), flat)
    for name, codes in batch.contexts.items():
        np.add.at(grads[f"context_{name}"], codes.ravel(), flat)
