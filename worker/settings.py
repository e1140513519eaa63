"""Settings of the worker: what it trains on, how, how often, and how many versions it keeps.

Field names of the model and its data selection follow Personalize's hyperparameter and
training-configuration names (hidden_dimension, bptt, recency_mask,
min/max_user_history_length_percentile, event types and event value threshold) so users can
carry a Personalize solution configuration over.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from connector.settings import CommonSettings


class WorkerSettings(CommonSettings):
    """Settings of `streamrec train`, `streamrec worker` and `streamrec models`."""

    worker_cache_dir: Path = Field(
        Path(".streamrec/cache"),
        description="Folder of the local training-data cache, so the next run reads only new "
        "records (relative to cwd; a volume in containers).",
    )
    training_event_types: list[str] = Field(
        default_factory=list,
        description="Event types to train on (JSON list); empty trains on every type.",
    )
    training_event_value_threshold: float | None = Field(
        None, description="Train only on events whose EVENT_VALUE is at least this."
    )
    min_user_history_length_percentile: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Leave out users whose history is shorter than this "
        "percentile of history lengths.",
    )
    max_user_history_length_percentile: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="Leave out users whose history is longer than this "
        "percentile of history lengths (bots, shared accounts).",
    )
    hidden_dimension: int = Field(
        64, ge=32, le=256, description="Size of the user state and of the item embeddings."
    )
    bptt: int = Field(
        32,
        ge=2,
        le=32,
        description="Recent events the recurrent user state is computed over "
        "(and the truncation length of back-propagation through time).",
    )
    recency_mask: bool = Field(
        True, description="Weight recent events more in training, to follow popularity trends."
    )
    training_epochs: int = Field(
        20,
        ge=1,
        description="Most passes over the data in a FULL run (fewer on big data: about "
        "4,000,000 predictions in all, but at least 5 passes; docs/model.md, Time budget).",
    )
    training_budget_seconds: float = Field(
        1800.0,
        gt=0,
        description="Most seconds a FULL run trains. When the planned epochs would take "
        "longer, it makes fewer passes, then trains on the newest data only, and it stops "
        "at the budget in any case (docs/model.md, Time budget).",
    )
    training_seed: int = Field(7, description="Seed of every random choice in training.")
    evaluation_users: int = Field(
        1000,
        ge=0,
        description="Users whose last event is held out to measure each FULL version "
        "(chosen at random among users with two or more events).",
    )
    model_keep_versions: int = Field(
        5, ge=1, description="Model versions kept in Redis (older ones are deleted)."
    )
    worker_full_interval_seconds: float = Field(
        24 * 3600.0, description="How often `streamrec worker` runs a FULL retrain."
    )
    worker_web_port: int = Field(
        6067, description="Port of `streamrec worker`'s /healthz, /readyz and /metrics."
    )
    worker_update_interval_seconds: float = Field(
        300.0, description="How often `streamrec worker` runs an UPDATE (new items, popularity)."
    )
    worker_isolated_runs: bool = Field(
        True,
        description="Whether `streamrec worker` runs each FULL and UPDATE in a child process, "
        "so that a run's memory goes back to the system when it ends (in one process, what "
        "runs left behind grew with the dataset); false runs them in the worker's process.",
    )
    worker_run_on_start: bool = Field(
        True,
        description="Whether `streamrec worker` runs a FULL as soon as it starts; when false, "
        "each mode first runs one interval after the start (for a worker started just after a "
        "FULL, as `streamrec demo` does).",
    )
