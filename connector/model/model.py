"""The User-Personalization model as serving sees it: vocabularies, weights, and the one
function that turns a user's recent events into a state and scores.

`Model.user_states` is the single place a user state is computed, for the connector's
precomputed lists, the API's requests and offline evaluation alike, so online and offline
results cannot drift apart. The state is a GRU run over the last `bptt` events of the
session history the connector keeps in Redis, so a new or anonymous user is personalised from
their first event, without retraining.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from connector.model import network
from connector.model.artifacts import ModelArtifacts, with_padding_row
from connector.model.history import ABSENT, HistoryEntry

ARCHITECTURE = "gru"
SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class Hyperparameters:
    """Personalize's names and ranges where they exist; the rest are ours."""

    hidden_dimension: int = 64  # 32-256: state and embedding size
    bptt: int = 32  # 2-32: events the state is computed over; BPTT window
    recency_mask: bool = True  # weight recent events more in training
    epochs: int = 20  # at most; see max_positions
    max_positions: int = 4_000_000  # fewer epochs on big data: about this many predictions
    batch_size: int = 64  # windows per step
    learning_rate: float = 0.006  # Adam's step size (in the first epoch, when it decays)
    learning_rate_schedule: str = "linear"  # down to 1/epochs of it at the end; or "constant"
    dropout: float = 0.4  # of the GRU's inputs, in training
    item_weight_decay: float = 0.3  # decoupled (AdamW) decay of the item embeddings a step moves
    sampled_candidates: int = 2048  # softmax over all items when there are fewer
    recent_items: int = 4  # 0-bptt: latest items added to the query with learned weights
    mask_seen: bool = True  # leave the user's earlier items out of each step's softmax
    sampled_correction: bool = True  # subtract log expected count from sampled logits

    def __post_init__(self) -> None:
        if not 32 <= self.hidden_dimension <= 256:
            raise ValueError(f"hidden_dimension must be 32-256, got {self.hidden_dimension}")
        if not 2 <= self.bptt <= 32:
            raise ValueError(f"bptt must be 2-32, got {self.bptt}")
        if not 0 <= self.recent_items <= self.bptt:
            raise ValueError(f"recent_items must be 0-bptt ({self.bptt}), got {self.recent_items}")
        if self.learning_rate_schedule not in SCHEDULES:
            raise ValueError(
                f"learning_rate_schedule must be one of {SCHEDULES}, "
                f"got {self.learning_rate_schedule!r}"
            )


@dataclass
class Model:
    """A trained model: weights in `params` (item row 0 is padding) and the vocabularies
    that map history entries to their rows. `columns` maps an item id to its column in
    `items` order (its row in `params` is one more)."""

    items: list[str]
    event_types: list[str]
    context_values: dict[str, list[str]]
    params: network.Params
    hyperparameters: Hyperparameters
    meta: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, int] = field(init=False, repr=False)
    _type_codes: dict[str, int] = field(init=False, repr=False)
    _context_codes: dict[str, dict[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.columns = {item: column for column, item in enumerate(self.items)}
        self._type_codes = {name: code for code, name in enumerate(self.event_types)}
        self._context_codes = {
            name: {value: code for code, value in enumerate(values)}
            for name, values in self.context_values.items()
        }

    def user_states(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        """One query vector per history (float32, shape (n, hidden_dimension)); items the
        model does not know are skipped, unknown event types and context values count as
        absent, and an empty history gives the state of a user with no events."""
        batch = self._encode(histories)
        x = network.embed(self.params, batch.items, batch.types, batch.contexts)
        cache = network.run(self.params, x)
        lengths = (batch.items > 0).sum(axis=1)
        rows = np.arange(len(histories))
        last = cache.h[rows, lengths]
        recent = network.recent(self.params, network.item_inputs(self.params, batch.items))
        if recent is not None:  # the term at each history's last event; none when empty
            recent = recent[rows, np.maximum(lengths - 1, 0)] * (lengths > 0)[:, None]
        return network.output(self.params, last, recent).astype(np.float32)

    def scores(self, states: np.ndarray) -> np.ndarray:
        """Scores of every item (columns in `items` order) for each state."""
        table = self.params["item_embeddings"][1:]
        return (states @ table.T + self.params["item_bias"][1:]).astype(np.float32)

    def scores_at(self, state: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Scores of the items `columns` for one state: scores(state[None])[0][columns]."""
        rows = columns + 1  # row 0 is padding
        scores = self.params["item_embeddings"][rows] @ state + self.params["item_bias"][rows]
        return scores.astype(np.float32)  # type: ignore[no-any-return]

    def score_histories(self, histories: Sequence[Sequence[HistoryEntry]]) -> np.ndarray:
        """Scores of every item for each history (the Recommender protocol)."""
        return self.scores(self.user_states(histories))

    def _encode(self, histories: Sequence[Sequence[HistoryEntry]]) -> network.Batch:
        steps = self.hyperparameters.bptt
        windows = [[e for e in history if e.item in self.columns][-steps:] for history in histories]
        # As many steps as the longest window: the padding after a window's end never
        # reaches its state (right padding), and a short history then costs few GRU steps.
        shape = (len(histories), max([1, *(len(window) for window in windows)]))
        items, types = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        contexts = {name: np.zeros(shape, np.int64) for name in self.context_values}
        for row, known in enumerate(windows):
            for step, entry in enumerate(known):
                items[row, step] = self.columns[entry.item] + 1  # row 0 is padding
                types[row, step] = self._type_codes.get(entry.event_type or ABSENT, 0)
                for name, codes in contexts.items():
                    value = entry.context.get(name)
                    codes[row, step] = self._context_codes[name].get(value, 0) if value else 0
        empty = np.zeros(shape, np.int64)
        return network.Batch(items, types, contexts, empty, np.zeros(shape))

    def to_artifacts(self, extra: Mapping[str, np.ndarray] | None = None) -> ModelArtifacts:
        """The model as publishable data; `extra` adds arrays such as item_popularity."""
        arrays = {
            name: (value[1:] if name.startswith("item_") else value).astype(np.float32)
            for name, value in self.params.items()
        }
        meta = {
            **self.meta,
            "architecture": ARCHITECTURE,
            "hyperparameters": asdict(self.hyperparameters),
            "event_types": self.event_types,
            "context_values": self.context_values,
        }
        return ModelArtifacts(list(self.items), {**arrays, **dict(extra or {})}, meta)

    @classmethod
    def from_artifacts(cls, artifacts: ModelArtifacts) -> Model:
        """The model of a published version (arrays it does not use are ignored)."""
        meta = dict(artifacts.meta)
        params = {}
        for name in ("item_embeddings", "item_bias"):
            params[name] = with_padding_row(artifacts.arrays[name])
        for name, value in artifacts.arrays.items():
            if name in _WEIGHTS or name.startswith("context_") or name == "type_embeddings":
                params[name] = value
        return cls(
            items=artifacts.items,
            event_types=list(meta.pop("event_types")),
            context_values={k: list(v) for k, v in meta.pop("context_values").items()},
            params=params,
            hyperparameters=Hyperparameters(**meta.pop("hyperparameters")),
            meta=meta,
        )


_WEIGHTS = ("gru_w", "gru_u", "gru_b", "out_w", "out_b", "recent_w")
