"""The network's forward pass: a GRU over event embeddings, scored against tied item
embeddings. Serving runs only this; training (worker/training/gru.py) adds the backward pass.

Written out in numpy, vectorised over the batch (the only Python loop is over the time steps
of a window, at most `bptt`).

Shapes: B sequences in a batch, T time steps, H hidden units (= embedding size), V items.
Item row 0 of `item_embeddings` is padding: it is never a target and its input is masked.
Gates follow Cho et al. (2014): z, r = sigmoid(x W + h U + b), n = tanh(x W_n + (r * h) U_n +
b_n), h' = (1 - z) * n + z * h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Batch:
    """Inputs and targets of B windows of T steps (right-padded with item 0)."""

    items: np.ndarray  # (B, T) int, 0 = padding
    types: np.ndarray  # (B, T) int event type codes
    contexts: dict[str, np.ndarray]  # field -> (B, T) int context value codes
    targets: np.ndarray  # (B, T) int next item, 0 = no target
    weights: np.ndarray  # (B, T) float loss weight per target (0 where no target)
    seen_before: np.ndarray | None = None  # (B, P) items seen before the window (training)


@dataclass
class Cache:
    """What the forward pass keeps for the backward pass."""

    x: np.ndarray  # (B, T, H) inputs after dropout
    keep_in: np.ndarray | None  # (B, T, H) input dropout mask (scaled), None without dropout
    h: np.ndarray  # (B, T + 1, H) states, h[:, 0] = 0
    z: np.ndarray
    r: np.ndarray
    n: np.ndarray


def sigmoid(values: np.ndarray) -> np.ndarray:
    """Logistic function as (1 + tanh(x / 2)) / 2: the same values to float rounding, no
    overflow for large inputs of either sign, and one transcendental operation: the form
    it replaces, exp(-logaddexp(0, -x)), was over 20 times slower on a batch of gates, the
    GRU's largest cost in a list refresh."""
    result: np.ndarray = np.tanh(values * 0.5)
    result += 1.0
    result *= 0.5
    return result


def embed(
    params: Params, items: np.ndarray, types: np.ndarray, contexts: dict[str, np.ndarray]
) -> np.ndarray:
    """Each step's input: item + event type + context embeddings, zero at padding steps."""
    x = params["item_embeddings"][items] + params["type_embeddings"][types]
    for name, codes in contexts.items():
        x = x + params[f"context_{name}"][codes]
    masked: np.ndarray = x * (items > 0)[..., None]
    return masked


def run(params: Params, x: np.ndarray) -> Cache:
    """The GRU over inputs x (B, T, H) from a zero state."""
    batch, steps, hidden = x.shape
    projected = x @ params["gru_w"] + params["gru_b"]  # (B, T, 3H), all steps at once
    u_zr, u_n = params["gru_u"][:, : 2 * hidden], params["gru_u"][:, 2 * hidden :]
    h = np.zeros((batch, steps + 1, hidden), dtype=x.dtype)
    z, r, n = (np.empty((batch, steps, hidden), dtype=x.dtype) for _ in range(3))
    for t in range(steps):
        gates = sigmoid(projected[:, t, : 2 * hidden] + h[:, t] @ u_zr)
        z[:, t], r[:, t] = gates[:, :hidden], gates[:, hidden:]
        n[:, t] = np.tanh(projected[:, t, 2 * hidden :] + (r[:, t] * h[:, t]) @ u_n)
        h[:, t + 1] = (1 - z[:, t]) * n[:, t] + z[:, t] * h[:, t]
    return Cache(x=x, keep_in=None, h=h, z=z, r=r, n=n)


def item_inputs(params: Params, items: np.ndarray) -> np.ndarray:
    """The item embeddings of a window (B, T, H), zero at padding steps."""
    rows: np.ndarray = params["item_embeddings"][items] * (items > 0)[..., None]
    return rows


def recent(params: Params, items_x: np.ndarray) -> np.ndarray | None:
    """The recent-items term of the query at every step t of a window: the sum over the
    last K items (k = 0 the item at t) of recent_w[k] * item_embedding, elementwise; None
    when the model has no `recent_w` (K = 0). `items_x` is item_inputs (B, T, H)."""
    weights = params.get("recent_w")
    if weights is None:
        return None
    result: np.ndarray = items_x * weights[0]
    for back in range(1, min(len(weights), items_x.shape[1])):
        result[:, back:] += items_x[:, :-back] * weights[back]
    return result


def output(params: Params, states: np.ndarray, recent_term: np.ndarray | None = None) -> np.ndarray:
    """The query vector a state is scored with: states @ out_w + out_b, plus the
    recent-items term of the same step when the model has one."""
    query: np.ndarray = states @ params["out_w"] + params["out_b"]
    if recent_term is not None:
        query = query + recent_term
    return query
