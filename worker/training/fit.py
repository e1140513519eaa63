"""Training the GRU model: windows of each user's sequence, shuffled batches, Adam.

Why windows of `bptt` steps from a zero state: serving computes a user's state the same way,
over the last `bptt` events of the history, so what the model learns to predict from is what
it will see. A random shift of the window boundaries per user and epoch varies which
positions start a window. Seeded throughout: the same data and seed give the same model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from connector.model import network
from connector.model.model import Hyperparameters, Model
from worker.data.interactions import Interactions
from worker.exceptions import ModelFitError
from worker.training import gru
from worker.training.blocks import TimeRange, TrainingRows

Progress = Callable[[int, int, float], None]  # (epoch done, epochs, mean loss)
MAX_RECOVERIES = 3
CLIP_NORM = 5.0
SEEN_BEFORE = 256  # with mask_seen, at most this many of a user's items before a window
CALIBRATION_BATCHES = 20  # batches timed before a run with a budget plans the rest
# Passes planned however big the data (budget permitting): one pass over millions of events
# leaves quality behind that more passes recover (docs/model.md, Time budget).
MIN_PASSES = 5

log = logging.getLogger("streamrec.worker")


@dataclass(frozen=True)
class Windows:
    """All training windows of one epoch as (W, bptt) matrices."""

    items: np.ndarray
    types: np.ndarray
    contexts: dict[str, np.ndarray]
    targets: np.ndarray
    weights: np.ndarray
    user_start: np.ndarray  # (W,) row of the window's user's first event in the data
    start: np.ndarray  # (W,) row of the window's first event in the data
    sequence: np.ndarray  # (rows,) every event's item row (item code + 1)

    def batch(self, rows: np.ndarray, seen_before: int = 0) -> network.Batch:
        """The windows `rows`, cut to the longest of them; with `seen_before`, up to that
        many of each window's user's items before the window (Batch.seen_before)."""
        steps = max(1, int((self.targets[rows] > 0).sum(axis=1).max()))
        return network.Batch(
            items=self.items[rows, :steps],
            types=self.types[rows, :steps],
            contexts={name: codes[rows, :steps] for name, codes in self.contexts.items()},
            targets=self.targets[rows, :steps],
            weights=self.weights[rows, :steps],
            seen_before=self._before(rows, seen_before) if seen_before else None,
        )

    def _before(self, rows: np.ndarray, most: int) -> np.ndarray:
        """(B, P) the last (at most `most`) items before each window, left-padded with 0."""
        start = self.start[rows]
        lengths = np.minimum(start - self.user_start[rows], most)
        width = max(1, int(lengths.max()))
        offsets = np.arange(width) - width
        index = np.maximum(start[:, None] + offsets, 0)
        before: np.ndarray = np.where(offsets >= -lengths[:, None], self.sequence[index], 0)
        return before


def train(
    data: Interactions,
    params: Hyperparameters | None = None,
    seed: int = 7,
    progress: Progress | None = None,
    *,
    excluded: np.ndarray | None = None,
    budget_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Model:
    """A model trained on `data` (already selected and checked for minimum size) without
    the rows `excluded` (held out for evaluation). With `budget_seconds`, the run fits in
    it: fewer epochs, then only the newest data, when the planned epochs would not
    (`plan`), and a stop after the batch that reaches it."""
    hyper = params or Hyperparameters()
    budget = _Budget(budget_seconds, clock)
    rows = TrainingRows(data, excluded)
    rng = np.random.default_rng(seed)
    weights = initial_params(rows, hyper.hidden_dimension, rng, hyper.recent_items)
    run = _Run(rows, hyper, Adam(weights, hyper.learning_rate, hyper.item_weight_decay), rng)
    run.fit(budget, progress)
    return Model(
        items=list(rows.items),
        event_types=list(data.event_types),
        context_values={name: list(values) for name, values in data.context_values.items()},
        params=weights,
        hyperparameters=hyper,
    )


def epoch_count(predictions: int, hyper: Hyperparameters) -> int:
    """`epochs`, or fewer when the data is big: large datasets take many more steps per
    epoch and converge in fewer passes (about `max_positions` predictions in all), but at
    least MIN_PASSES; the budget then decides how many of them fit (`plan`)."""
    by_positions = math.ceil(hyper.max_positions / max(1, predictions))
    return max(1, min(hyper.epochs, max(MIN_PASSES, by_positions)))


def plan(predictions: int, epochs: int, capacity: float) -> tuple[int, float | None]:
    """(epochs, share of the newest predictions to train on; None: all) for a run that can
    make `capacity` predictions in its budget: the planned epochs if they fit, else fewer
    passes over everything, else one pass over the newest data that fits."""
    if capacity >= epochs * predictions:
        return epochs, None
    if capacity >= predictions:
        return int(capacity // predictions), None
    return 1, max(capacity, 1.0) / predictions


class _Budget:
    """The seconds a run may take from its start, on `clock`; None: no limit."""

    def __init__(self, seconds: float | None, clock: Callable[[], float]) -> None:
        self._clock, self.started = clock, clock()
        self.deadline = None if seconds is None else self.started + seconds

    def elapsed(self) -> float:
        return self._clock() - self.started

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self._clock()

    def spent(self) -> bool:
        return self.left() <= 0


class _Run:
    """One training run: epochs over the blocks of `rows`, each block's windows shuffled."""

    def __init__(
        self, rows: TrainingRows, hyper: Hyperparameters, optimiser: Adam, rng: np.random.Generator
    ) -> None:
        self.rows, self.hyper, self.optimiser, self.rng = rows, hyper, optimiser, rng
        self.gradients = GradientBuffers(optimiser.params)
        self.share = np.concatenate([[0], rows.item_counts]) / max(rows.rows, 1)
        self.planned = self.epochs = epoch_count(rows.predictions, hyper)
        self.since: int | None = None  # oldest timestamp trained on, once the budget cuts
        self.predicted = 0  # predictions made so far
        self.calibrating = True
        self.started = 0.0  # budget seconds elapsed when the first batch began

    def fit(self, budget: _Budget, progress: Progress | None) -> None:
        self.started = budget.elapsed()  # preparing the rows is not the training speed
        epoch = 0
        while epoch < self.epochs:
            schedule = self.hyper.learning_rate_schedule
            self.optimiser.decay = rate_factor(schedule, epoch, self.epochs)
            loss, finished = self._epoch(budget)
            if progress is not None:
                progress(epoch + 1, self.epochs, loss)
            if not finished:
                stopped = {"epoch": epoch + 1, "epochs": self.epochs, "predictions": self.predicted}
                log.warning("training stopped at its budget", extra=stopped)
                return
            epoch += 1

    def _epoch(self, budget: _Budget) -> tuple[float, bool]:
        """(mean loss, whether the epoch ran to its end within the budget)."""
        total, count = 0.0, 0
        for index in self.rng.permutation(len(self.rows.blocks)):
            block = self.rows.read(self.rows.blocks[index], self.since)
            for loss, predictions in _steps(block, self):
                total, count = total + loss, count + 1
                self.predicted += predictions
                if self.calibrating and count >= CALIBRATION_BATCHES:
                    self._replan(budget)
                if budget.spent():
                    return total / max(count, 1), False
            if not self.calibrating and self.since is None:
                self._replan(budget, first=False)  # a block's reading counted: a better rate
        return total / max(count, 1), True

    def _replan(self, budget: _Budget, first: bool = True) -> None:
        """Fit the rest of the run to the budget, from the speed so far: after the first
        batches, then after each block (which may give back planned passes an early,
        slow estimate took away); only the first may cut the data to the newest."""
        self.calibrating = False
        if budget.deadline is None:
            return
        rate = self.predicted / max(budget.elapsed() - self.started, 1e-9)
        capacity = self.predicted + rate * budget.left()
        epochs, newest = plan(self.rows.predictions, self.planned, capacity)
        if newest is not None and not first:
            return  # the stop at the budget ends this run
        if newest is not None:
            self.since = int(np.quantile(self.rows.timestamps_sample(), 1.0 - newest))
        if (epochs, newest) != (self.epochs, None):
            fitted = {"epochs": epochs, "newest_share": newest, "since": self.since}
            log.info("training fitted to its budget", extra=fitted)
        self.epochs = epochs


def rate_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate's factor in `epoch` (from 0): 1 throughout for "constant"; for
    "linear", 1 in the first epoch down to 1/epochs in the last, so the last epochs settle
    the weights instead of moving them as much as the first did."""
    return 1.0 - epoch / epochs if schedule == "linear" else 1.0


def initial_params(
    rows: TrainingRows, hidden: int, rng: np.random.Generator, recent_items: int = 0
) -> network.Params:
    """Small random weights; item biases start at log popularity so early steps learn
    what is specific to a user rather than what is popular. The recent-items weights (when
    `recent_items`) start at zero: training starts from the plain GRU's query."""
    data = rows.data
    items = len(rows.items) + 1
    bias = np.log1p(np.concatenate([[0], rows.item_counts]).astype(np.float64))
    bias[1:] -= bias[1:].mean()
    bias[0] = 0.0
    limit = 1.0 / math.sqrt(hidden)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-limit, limit, shape).astype(np.float32)

    params = {
        "item_embeddings": rng.normal(0.0, 0.1, (items, hidden)).astype(np.float32),
        "item_bias": bias.astype(np.float32),
        "type_embeddings": rng.normal(0.0, 0.01, (len(data.event_types), hidden)).astype(
            np.float32
        ),
        "gru_w": uniform(hidden, 3 * hidden),
        "gru_u": uniform(hidden, 3 * hidden),
        "gru_b": np.zeros(3 * hidden, np.float32),
        "out_w": np.eye(hidden, dtype=np.float32),
        "out_b": np.zeros(hidden, np.float32),
    }
    for name, values in data.context_values.items():
        params[f"context_{name}"] = rng.normal(0.0, 0.01, (len(values), hidden)).astype(np.float32)
    if recent_items:
        params["recent_w"] = np.zeros((recent_items, hidden), np.float32)
    params["item_embeddings"][0] = 0.0
    return params


class GradientBuffers:
    """Gradient arrays kept from step to step. A sampled step writes only the item rows it
    touches, so only those rows are cleared after it: fresh zeroed item tables every step
    cost a large catalogue more than the rest of the step (docs/model.md, Time budget)."""

    def __init__(self, params: network.Params) -> None:
        self.arrays = {name: np.zeros_like(value) for name, value in params.items()}

    def clear(self, item_rows: np.ndarray | None) -> None:
        """Zero what the last step wrote: with `item_rows`, only those rows of item_*."""
        for name, array in self.arrays.items():
            array[_rows(name, item_rows)] = 0


def _rows(name: str, item_rows: np.ndarray | None) -> np.ndarray | slice:
    """The rows of parameter `name` a step that touched `item_rows` (None: all) changes:
    those rows of the item_* tables, every row of the other parameters."""
    return item_rows if item_rows is not None and name.startswith("item_") else slice(None)


class Adam:
    """Adam with global-norm clipping, decoupled weight decay of the item embeddings (AdamW)
    and a guard that undoes a step gone non-finite."""

    def __init__(
        self, params: network.Params, learning_rate: float, item_weight_decay: float = 0.0
    ) -> None:
        self.params = params
        self.learning_rate = learning_rate
        self.item_weight_decay = item_weight_decay
        self.decay = 1.0  # factor on the learning rate, set per epoch by the schedule
        self.moments = {name: np.zeros_like(value) for name, value in params.items()}
        self.squares = {name: np.zeros_like(value) for name, value in params.items()}
        self.steps = 0
        self.recoveries = 0

    def step(self, loss: float, grads: network.Params, item_rows: np.ndarray | None = None) -> None:
        """Apply one update, or skip it and lower the rate when loss or gradients are not
        finite; raise ModelFitError when that keeps happening. With `item_rows`, the item_*
        parameters are updated only in those rows (lazy Adam): with a sampled softmax the
        other rows have no gradient, and a dense update of a large catalog each step would
        cost more than the step itself; the weight decay, too, shrinks only those rows."""
        selected = {name: grad[_rows(name, item_rows)] for name, grad in grads.items()}
        norm = math.sqrt(sum(float((g * g).sum()) for g in selected.values()))
        if not (math.isfinite(loss) and math.isfinite(norm)):
            self._recover(loss)
            return
        scale = min(1.0, CLIP_NORM / (norm + 1e-12))
        self.steps += 1
        correction = math.sqrt(1 - 0.999**self.steps) / (1 - 0.9**self.steps)
        rate = self.learning_rate * self.decay
        for name, value in self.params.items():
            rows = _rows(name, item_rows)
            grad = selected[name] * scale
            moments = self.moments[name][rows] = 0.9 * self.moments[name][rows] + 0.1 * grad
            squares = self.squares[name][rows] = (
                0.999 * self.squares[name][rows] + 0.001 * grad * grad
            )
            update = moments / (np.sqrt(squares) + 1e-8)
            if name == "item_embeddings" and self.item_weight_decay:
                value[rows] *= value.dtype.type(1.0 - rate * self.item_weight_decay)
            value[rows] -= (rate * correction * update).astype(value.dtype)

    def _recover(self, loss: float) -> None:
        self.recoveries += 1
        if self.recoveries > MAX_RECOVERIES:
            raise ModelFitError(f"training diverged: loss {loss} after {self.steps} steps")
        self.learning_rate /= 2


def _steps(data: Interactions, run: _Run) -> Iterator[tuple[float, int]]:
    """Train on the windows of one block in a random order: (loss, predictions) per batch."""
    hyper, optimiser, rng = run.hyper, run.optimiser, run.rng
    windows = make_windows(data, hyper.bptt, hyper.recency_mask, rng, run.rows.time_range)
    order = rng.permutation(len(windows.items))
    for start in range(0, len(order), hyper.batch_size):
        batch = windows.batch(
            order[start : start + hyper.batch_size], SEEN_BEFORE if hyper.mask_seen else 0
        )
        candidates = _candidates(batch, len(data.items), hyper.sampled_candidates, rng)
        correction = None
        if candidates is not None and hyper.sampled_correction:
            correction = _log_expected(candidates, run.share, hyper.sampled_candidates, batch)
        loss, grads = gru.loss_and_gradients(
            optimiser.params,
            batch,
            candidates,
            hyper.dropout,
            rng,
            hyper.mask_seen,
            correction,
            run.gradients.arrays,
        )
        touched = None if candidates is None else np.union1d(candidates, batch.items.ravel())
        optimiser.step(loss, grads, touched)
        run.gradients.clear(touched)
        yield loss, int((batch.targets > 0).sum())


def _candidates(
    batch: network.Batch, items: int, size: int, rng: np.random.Generator
) -> np.ndarray | None:
    """All items when there are few; else the batch's targets plus uniform negatives."""
    if items <= size:
        return None
    negatives = rng.integers(1, items + 1, size)
    return np.unique(np.concatenate([batch.targets[batch.targets > 0], negatives]))


def _log_expected(
    candidates: np.ndarray, share: np.ndarray, negatives: int, batch: network.Batch
) -> np.ndarray:
    """Log of each candidate's expected count in the sample: the uniform negatives plus the
    batch's targets, drawn about as often as the items are in the data (`share`, by row)."""
    uniform = negatives / (len(share) - 1)
    targets = int((batch.targets > 0).sum())
    expected: np.ndarray = np.log(uniform + targets * share[candidates])
    return expected.astype(np.float32)


def make_windows(
    data: Interactions,
    bptt: int,
    recency_mask: bool,
    rng: np.random.Generator,
    time_range: TimeRange | None = None,
) -> Windows:
    """Every user's (input, next item) pairs cut into windows of at most `bptt` steps;
    recency weights over `time_range` (default: the data's own)."""
    has_next = np.zeros(len(data), dtype=bool)
    has_next[:-1] = data.user[:-1] == data.user[1:]
    positions = np.flatnonzero(has_next)
    bounds = data.user_bounds()
    first = bounds[data.user[positions]]
    local = positions - first
    shift = rng.integers(0, bptt, len(data.users))[data.user[positions]]
    window_local = np.where(local + shift < bptt, 0, (local + shift) // bptt)
    step = np.where(window_local == 0, local, (local + shift) % bptt)
    window_key = data.user[positions].astype(np.int64) * (len(data) + 1) + window_local
    _, window = np.unique(window_key, return_inverse=True)
    shape = (int(window.max()) + 1 if len(window) else 0, bptt)
    if time_range is None and len(data):
        time_range = TimeRange(int(data.timestamp.min()), int(data.timestamp.max()))
    weights = (
        _recency_weights(data, positions + 1, time_range)
        if recency_mask and time_range is not None
        else np.ones(len(positions))
    )
    firsts = np.unique(window, return_index=True)[1]  # positions ascend, windows too
    return Windows(
        items=_scatter(shape, window, step, data.item[positions] + 1),
        types=_scatter(shape, window, step, data.event_type[positions]),
        contexts={
            name: _scatter(shape, window, step, codes[positions])
            for name, codes in data.context.items()
        },
        targets=_scatter(shape, window, step, data.item[positions + 1] + 1),
        weights=_scatter(shape, window, step, weights, np.float32),
        user_start=first[firsts],
        start=positions[firsts],
        sequence=data.item + 1,
    )


def _recency_weights(data: Interactions, targets: np.ndarray, time: TimeRange) -> np.ndarray:
    """1 for the oldest target event up to 2 for the newest, linear in time."""
    stamps = data.timestamp[targets].astype(np.float64)
    span = float(time.newest - time.oldest) or 1.0
    weights: np.ndarray = 1.0 + (stamps - float(time.oldest)) / span
    return weights


def _scatter(
    shape: tuple[int, int],
    window: np.ndarray,
    step: np.ndarray,
    values: np.ndarray,
    dtype: type = np.int64,
) -> np.ndarray:
    matrix: np.ndarray = np.zeros(shape, dtype=dtype)
    matrix[window, step] = values
    return matrix
