"""The network's backward pass and loss, for training: softmax cross-entropy of the next item
against tied item embeddings, back-propagated through time by hand in numpy.

Kept free of training policy (batching, optimiser, schedules) so its gradients can be
checked numerically on a tiny model (tests/unit/test_gru.py). The forward pass it
differentiates is connector/model/network.py, the one serving runs.
"""

from __future__ import annotations

import numpy as np

from connector.model.network import (
    Batch,
    Cache,
    Params,
    embed,
    item_inputs,
    output,
    recent,
    run,
)


def loss_and_gradients(
    params: Params,
    batch: Batch,
    candidates: np.ndarray | None = None,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
    mask_seen: bool = False,
    log_expected: np.ndarray | None = None,
    into: Params | None = None,
) -> tuple[float, Params]:
    """Weighted softmax cross-entropy of each target against `candidates` (all items when
    None; the targets must be among the candidates), and its gradient for every parameter.
    With `mask_seen`, the items a user has already shown up to each step (the window's, and
    batch.seen_before), other than the step's target, are left out of its softmax, as they
    are left out of the ranking.
    `log_expected` (one per candidate) is subtracted from the sampled logits: the log of how
    many times each candidate is expected among the samples (the sampled softmax's
    correction, so a sampled softmax estimates the full one).
    `into`: arrays of zeros shaped like the parameters, filled with the gradients (a caller
    reuses them across steps: fit.GradientBuffers); new ones when None."""
    x = embed(params, batch.items, batch.types, batch.contexts)
    keep_in = _dropout_mask(x.shape, dropout, rng, x.dtype)
    cache = run(params, x * keep_in if keep_in is not None else x)
    cache.keep_in = keep_in
    valid = batch.targets > 0
    items_x = None
    if "recent_w" in params:  # the recent-items term reads the same dropped-out inputs
        items_x = item_inputs(params, batch.items)
        if keep_in is not None:
            items_x = items_x * keep_in
    recent_all = recent(params, items_x) if items_x is not None else None
    states = cache.h[:, 1:][valid]  # (N, H)
    weights = batch.weights[valid] / max(float(batch.weights[valid].sum()), 1e-12)
    loss, d_query, grads = _softmax_loss(
        params,
        states,
        batch.targets[valid],
        weights,
        candidates,
        None if recent_all is None else recent_all[valid],
        _seen(batch, valid) if mask_seen else None,
        log_expected,
        into if into is not None else {name: np.zeros_like(v) for name, v in params.items()},
    )
    d_h = np.zeros_like(cache.h[:, 1:])
    d_h[valid] = d_query @ params["out_w"].T
    d_x = _backward(params, cache, d_h, grads)
    if keep_in is not None:
        d_x = d_x * keep_in
    _embedding_gradients(params, batch, d_x * (batch.items > 0)[..., None], grads)
    if items_x is not None:
        d_recent = np.zeros_like(items_x)
        d_recent[valid] = d_query
        _recent_gradients(params, batch, items_x, d_recent, keep_in, grads)
    return loss, grads


def _recent_gradients(
    params: Params,
    batch: Batch,
    items_x: np.ndarray,
    d_recent: np.ndarray,
    keep_in: np.ndarray | None,
    grads: Params,
) -> None:
    """Gradients of recent_w and of the item embeddings through the recent-items term."""
    weights = params["recent_w"]
    d_items = d_recent * weights[0]
    grads["recent_w"][0] = (d_recent * items_x).sum(axis=(0, 1))
    for back in range(1, min(len(weights), items_x.shape[1])):
        grads["recent_w"][back] = (d_recent[:, back:] * items_x[:, :-back]).sum(axis=(0, 1))
        d_items[:, :-back] += d_recent[:, back:] * weights[back]
    if keep_in is not None:
        d_items *= keep_in
    d_items *= (batch.items > 0)[..., None]
    hidden = d_items.shape[-1]
    np.add.at(grads["item_embeddings"], batch.items.ravel(), d_items.reshape(-1, hidden))


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
    recent_term: np.ndarray | None,
    seen: np.ndarray | None,
    log_expected: np.ndarray | None,
    grads: Params,
) -> tuple[float, np.ndarray, Params]:
    """(loss, its gradient with respect to the queries (N, H), the parameters' gradients so
    far: item embeddings and biases as targets and negatives, out_w, out_b), written into
    `grads` (zeros). The (N, C) logits are worked on in place: they are the step's largest
    array."""
    columns = np.arange(1, len(params["item_embeddings"])) if candidates is None else candidates
    table = params["item_embeddings"][columns]  # (C, H)
    query = output(params, states, recent_term)  # (N, H)
    logits = query @ table.T
    logits += params["item_bias"][columns]
    if log_expected is not None:
        logits -= log_expected
    if seen is not None:
        logits[_seen_cells(seen, targets, columns, candidates is None)] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    exponents = np.exp(logits, out=logits)
    totals = exponents.sum(axis=1)
    target_columns = np.searchsorted(columns, targets)
    rows = np.arange(len(targets))
    target_share = exponents[rows, target_columns] / totals
    loss = float(-(weights * np.log(target_share + 1e-30)).sum())
    d_logits = exponents  # softmax minus one-hot, each row weighted
    d_logits *= (weights / totals)[:, None]
    d_logits[rows, target_columns] -= weights
    grads["item_embeddings"][columns] = d_logits.T @ query  # columns are distinct
    grads["item_bias"][columns] = d_logits.sum(axis=0)
    d_query = d_logits @ table
    grads["out_w"] = states.T @ d_query
    grads["out_b"] = d_query.sum(axis=0)
    return loss, d_query, grads


def _seen(batch: Batch, valid: np.ndarray) -> np.ndarray:
    """For each valid step (N of them), the items its user has shown up to and including
    it: the window's `seen_before`, then the window's items up to the step (0 after it)."""
    steps = batch.items.shape[1]
    upto = np.tril(np.ones((steps, steps), dtype=bool))  # [t, k]: k <= t
    past: np.ndarray = np.where(upto[None], batch.items[:, None, :], 0)[valid]
    if batch.seen_before is not None:
        windows = np.broadcast_to(np.arange(len(batch.items))[:, None], valid.shape)[valid]
        past = np.concatenate([batch.seen_before[windows], past], axis=1)
    return past


def _seen_cells(
    seen: np.ndarray, targets: np.ndarray, columns: np.ndarray, all_items: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the logits of seen items other than the row's target."""
    seen = np.where(seen == targets[:, None], 0, seen)
    if all_items:
        places, present = seen - 1, seen > 0
    else:
        places = np.minimum(np.searchsorted(columns, seen), len(columns) - 1)
        present = (seen > 0) & (columns[places] == seen)
    rows, steps = np.nonzero(present)
    return rows, places[rows, steps]


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
