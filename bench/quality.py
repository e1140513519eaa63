"""Recommendation quality of streamrec as a user receives it, beside the classic baselines.

    python3 bench/quality.py --dataset ml-100k|video [--seeds 1] [--models ...] [--keep-going]
    python3 bench/quality.py --in-process [--seeds 3]      # the model alone, trained here

The protocol is leave-last-out (worker.evaluation.holdout.split_last): per user with at least 2
interactions the latest one (ties in file order) is the target, everything before it is
training data and history; every answer is a full ranking with the user's seen items
excluded; HR@10 and NDCG@10 (worker.evaluation.metrics) are averaged over those users.

By default our model is measured THROUGH THE PRODUCT PATH, as a new user would run it, on
Kafka and Redis from bench/services.py (started here unless STREAMREC_KAFKA_BOOTSTRAP and
STREAMREC_REDIS_URL are set): `streamrec init` of a fresh dataset group, a `streamrec
connector` process, `streamrec import items` (ML-100K's movies; Video Games has no item
file) and `streamrec import interactions` of the training part, a wait until the connector
has caught up (consumer lag 0), `streamrec train --mode full` with default settings, then
`POST /recommendations {"userId", "numResults": 10}` for every evaluated user against a
`streamrec api` with default settings ("streamrec") and a second one with
STREAMREC_EXPLORATION_WEIGHT=0 ("streamrec_no_exploration"). Every command is this
checkout's code on its defaults (STREAMREC_* settings of the caller are dropped, but for
where Kafka and Redis are). Beside it, in the same run:

- "streamrec_in_process": the same model version, loaded from Redis, scored by
  worker.evaluation.holdout.evaluate on the offline histories (what `streamrec models list` and the
  in-process benchmark measure);
- "streamrec_serving_in_process": the same version through connector.serving's
  recommend_many (the code behind the API) at exploration weight 0, on the offline
  histories: any difference from "streamrec_no_exploration" comes from what the API reads
  (its history window, the order of events with equal timestamps) rather than the model;
- the baselines (pop, itemknn, markov, als; bench/baselines.py) trained here on the same
  training split; ALS needs the `bench` extra and is skipped with a note without it.

`--in-process` is the former benchmark: our model trained here (`worker.training.fit.train`
with default hyperparameters, --seeds runs from --first-seed 0) and scored with evaluate.

Prints a table, diagnostics of the API's answers and the time each step took; the last
line is one JSON object {"dataset", "ndcg10": {...}, "hr10": {...},
"default_vs_no_exploration": NDCG@10 ratio, ...}, with our API's answers under "streamrec".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import datasets
from bench.baselines import ALS, ItemKNN, MarkovChain, MostPopular
from bench.movielens import CACHE_DIR
from bench.product_path import (
    Answer,
    Product,
    ProductPathError,
    answered_from_lists,
    clean_environment,
)
from bench.product_path import recommendations as ask
from bench.services import services
from connector.api.settings import ApiSettings
from connector.keys import Keys, Subject
from connector.model.history import HistoryEntry
from connector.model.model import Hyperparameters
from connector.serving.current_model import ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from connector.settings import ConnectorSettings
from connector.stores.histories import HistoryReader, SubjectHistory
from connector.stores.model_versions import ModelStore
from worker.data import movielens
from worker.data.interactions import Interactions
from worker.evaluation.holdout import Holdout, evaluate, split_last
from worker.evaluation.metrics import MetricAccumulator
from worker.evaluation.recommender import Recommender
from worker.settings import WorkerSettings
from worker.training import fit

Trainer = Callable[[Interactions, int], Recommender]  # (training data, seed) -> model
BASELINES = ("pop", "itemknn", "markov", "als")
MODELS = (*BASELINES, "streamrec")
DATASETS = tuple(datasets.LOADERS)
BASELINE_SEED = 0
COUNT = 10  # numResults asked for, and the cut-off of both metrics
INTERACTION_FIELDS = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")
ITEM_FIELDS = ("ITEM_ID", "TITLE", "GENRES")
# Settings of the processes besides the defaults: where Kafka and Redis are (kept from the
# caller's environment), and the worker's local training-data cache (under the run's
# temporary folder instead of the checkout's .streamrec/).
CONNECTION_PREFIXES = ("STREAMREC_KAFKA_", "STREAMREC_REDIS_")


@dataclass
class Result:
    """One model's figures, one entry per training run (several seeds for our model)."""

    name: str
    ndcg10: list[float] = field(default_factory=list)
    hr10: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, metrics: Mapping[str, float], seconds: float) -> None:
        self.ndcg10.append(metrics["ndcg@10"])
        self.hr10.append(metrics["hr@10"])
        self.train_seconds.append(seconds)


# --- the in-process models -------------------------------------------------------------------


def baselines() -> dict[str, Trainer]:
    """The baselines by name; only ALS reads the seed."""
    return {
        "pop": lambda data, seed: MostPopular(data),
        "itemknn": lambda data, seed: ItemKNN(data),
        "markov": lambda data, seed: MarkovChain(data),
        "als": lambda data, seed: ALS(data, seed=seed),
    }


def streamrec_trainer() -> Trainer:
    """Our model's training function, with the defaults `streamrec train` uses."""

    def trainer(data: Interactions, seed: int) -> Recommender:
        model: Recommender = fit.train(data, Hyperparameters(), seed)
        return model

    return trainer


def measure(
    name: str, trainer: Trainer, seeds: list[int], train: Interactions, holdouts: list[Holdout]
) -> Result:
    """Trains once per seed and evaluates each model on the held-out targets."""
    result = Result(name)
    for seed in seeds:
        started = time.perf_counter()
        try:
            model = trainer(train, seed)
        except ImportError as exc:  # ALS without the bench extra
            result.note = f"skipped: {exc} (pip install -e '.[bench]')"
            return result
        seconds = time.perf_counter() - started
        metrics = evaluate(model, holdouts)
        result.add(metrics, seconds)
        if len(seeds) > 1:
            print(
                f"  {name} seed {seed}: NDCG@10 {metrics['ndcg@10']:.4f} "
                f"HR@10 {metrics['hr@10']:.4f}",
                flush=True,
            )
    return result


def trainers(
    names: list[str], seeds: int, first_seed: int = 0
) -> list[tuple[str, Trainer, list[int]]]:
    """(name, trainer, seeds to run) for every requested model (in-process)."""
    chosen = []
    for name in names:
        if name == "streamrec":
            chosen.append((name, streamrec_trainer(), list(range(first_seed, first_seed + seeds))))
        else:  # deterministic, or (ALS) run once with a fixed seed
            chosen.append((name, baselines()[name], [BASELINE_SEED]))
    return chosen


# --- the product path ------------------------------------------------------------------------


@dataclass
class Diagnostics:
    """What looked wrong in one API's answers, summed over the runs (seeds)."""

    users: int = 0
    slots: int = 0
    short_lists: int = 0  # answers with fewer than COUNT items
    explored_slots: int = 0
    seen_items: int = 0  # answer items already in the user's history
    users_with_seen: int = 0
    long_history_users: int = 0  # more events before the target than the API reads
    history_differs: int = 0  # the API's history is not the offline one's end, in order
    differ_offline: int = 0  # top ids differ from recommend_many on the offline history
    differ_stored: int = 0  # ... on the history the API reads from Redis
    from_lists: int = 0  # answered from the precomputed list (the API's own counter)

    def line(self, name: str) -> str:
        slots = max(self.slots, 1)
        return (
            f"{name:<26} {self.users:>6,} {self.short_lists:>6,} "
            f"{self.explored_slots:>6,} ({100 * self.explored_slots / slots:4.1f}%) "
            f"{self.seen_items:>6,} {self.users_with_seen:>6,} {self.long_history_users:>6,} "
            f"{self.history_differs:>8,} {self.differ_offline:>8,} {self.differ_stored:>8,} "
            f"{self.from_lists:>6,}"
        )


@dataclass
class ProductRun:
    """The product path's results and how long each step took."""

    results: list[Result]
    diagnostics: dict[str, Diagnostics]
    seconds: dict[str, float]
    notes: list[str]


def interaction_rows(data: Interactions) -> Iterator[dict[str, object]]:
    """The Interactions dataset rows of `data`, in its order (user, time, arrival)."""
    for row in range(len(data)):
        event_type = data.event_types[data.event_type[row]]
        value = float(data.event_value[row])
        yield {
            "USER_ID": data.users[data.user[row]],
            "ITEM_ID": data.items[data.item[row]],
            "TIMESTAMP": int(data.timestamp[row]),
            "EVENT_TYPE": event_type or None,
            "EVENT_VALUE": None if math.isnan(value) else value,
        }


def item_rows(dataset: str) -> list[dict[str, str]]:
    """The dataset's Items rows: ML-100K's movies (title, genres; no creation time);
    Amazon Video Games has no item file."""
    if dataset == "ml-100k":
        return list(movielens.read_items(movielens.ml100k_files(CACHE_DIR)["item"]))
    return []


def metrics_of(
    answers: Mapping[str, Sequence[str]], holdouts: Sequence[Holdout], catalog: Sequence[str]
) -> dict[str, float]:
    """worker.evaluation.metrics over the answered lists (item ids, best first): a user without an
    answer or an item outside `catalog` counts as an empty slot."""
    columns = {item: column for column, item in enumerate(catalog)}
    ranked = np.full((len(holdouts), COUNT), -1, dtype=np.int64)
    for row, holdout in enumerate(holdouts):
        for rank, item in enumerate(list(answers.get(holdout.user, ()))[:COUNT]):
            ranked[row, rank] = columns.get(item, -1)
    accumulator = MetricAccumulator(len(catalog))
    accumulator.add(ranked, [np.array([columns.get(h.target, -1)]) for h in holdouts])
    return accumulator.result()


def in_process_answers(
    served: ServingModel,
    histories: Mapping[str, Sequence[HistoryEntry]],
    weight: float,
    interacted: Mapping[str, Sequence[str]] | None = None,
    batch: int = 256,
) -> dict[str, list[str]]:
    """recommend_many (the API's ranking code) on each user's history, at exploration
    `weight` with the API's default age cut-off; seen items are `interacted` (as the API
    reads them) when given, else the history's."""
    cut_off = ApiSettings.model_fields["exploration_item_age_cut_off"].default
    exploration = Exploration(weight, cut_off)
    rng = np.random.default_rng(0)
    answers: dict[str, list[str]] = {}
    items = served.model.items
    users = list(histories)
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        seen = None if interacted is None else [interacted[u] for u in chunk]
        ranked = recommend_many(
            served, [histories[u] for u in chunk], COUNT, exploration, rng, interacted=seen
        )
        for user, listed in zip(chunk, ranked, strict=True):
            answers[user] = [items[int(c)] for c in listed.columns]
    return answers


def stored_histories(
    client: redis.Redis, group: str, users: Sequence[str], window: int
) -> dict[str, SubjectHistory]:
    """Each user's history in Redis, read as the API reads it (the latest `window` events
    and the interacted items)."""
    reader = HistoryReader(client, Keys(group), window)
    histories: dict[str, SubjectHistory] = {}
    for start in range(0, len(users), 500):
        chunk = users[start : start + 500]
        read = reader.read([Subject("u", user) for user in chunk])
        histories.update(zip(chunk, read, strict=True))
    return histories


@dataclass(frozen=True)
class References:
    """In-process answers at weight 0 to compare the API's with: from the offline history
    (the protocol's), and from the history the API reads in Redis; and which users' Redis
    history is not the end of their offline one (same items and times in the same order)."""

    offline: dict[str, list[str]]
    stored: dict[str, list[str]]
    history_differs: set[str]


def references(
    served: ServingModel, holdouts: Sequence[Holdout], client: redis.Redis, group: str
) -> References:
    window = ApiSettings.model_fields["history_length"].default
    offline = {h.user: h.history for h in holdouts}
    stored = stored_histories(client, group, list(offline), window)
    differs = {
        user
        for user, history in offline.items()
        if _events(history[-window:]) != _events(stored[user].events)
    }
    return References(
        in_process_answers(served, offline, 0.0),
        in_process_answers(
            served,
            {user: read.events for user, read in stored.items()},
            0.0,
            {user: read.interacted_items for user, read in stored.items()},
        ),
        differs,
    )


def _events(history: Sequence[HistoryEntry]) -> list[tuple[str, int]]:
    return [(entry.item, entry.timestamp) for entry in history]


def diagnose(
    diagnostics: Diagnostics,
    answers: Mapping[str, Answer],
    holdouts: Sequence[Holdout],
    reference: References,
    window: int,
) -> None:
    """Add one API's answers to `diagnostics`."""
    for holdout in holdouts:
        user = holdout.user
        answer = answers[user]
        seen = {entry.item for entry in holdout.history}
        returned_seen = sum(item in seen for item in answer.items)
        long_history = len(holdout.history) > window
        diagnostics.users += 1
        diagnostics.slots += len(answer.items)
        diagnostics.short_lists += len(answer.items) < COUNT
        diagnostics.explored_slots += sum(answer.explored)
        diagnostics.seen_items += returned_seen
        diagnostics.users_with_seen += returned_seen > 0
        diagnostics.long_history_users += long_history
        diagnostics.history_differs += user in reference.history_differs
        diagnostics.differ_offline += answer.items != reference.offline[user]
        diagnostics.differ_stored += answer.items != reference.stored[user]


def product_path(
    dataset: str,
    train: Interactions,
    holdouts: list[Holdout],
    seeds: list[int | None],
    clients: int,
    overrides: Mapping[str, str],
) -> ProductRun:
    """Our model through init, connector, import, FULL and two API processes; see the
    module's docstring."""
    seconds: dict[str, float] = {}
    notes: list[str] = []
    names = ("streamrec", "streamrec_no_exploration")
    in_process = ("streamrec_in_process", "streamrec_serving_in_process")
    results = {name: Result(name) for name in (*names, *in_process)}
    diagnostics = {name: Diagnostics() for name in names}
    window = ApiSettings.model_fields["history_length"].default
    default_weight = ApiSettings.model_fields["exploration_weight"].default
    users = [h.user for h in holdouts]
    clock = Stopwatch(seconds)
    with contextlib.ExitStack() as stack:
        kafka, redis_url = stack.enter_context(services())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="quality-")))
        group = f"quality-{dataset.replace('.', '')}-{uuid.uuid4().hex[:8]}"
        settings = ConnectorSettings(
            dataset_group=group, kafka_bootstrap=kafka, redis_url=redis_url
        )
        env = clean_environment(keep=[n for n in os.environ if n.startswith(CONNECTION_PREFIXES)])
        env["STREAMREC_WORKER_CACHE_DIR"] = str(workdir / "cache")
        env.update(overrides)
        product = Product(settings, env, workdir)
        print(f"dataset group {group!r}; logs in {workdir}", flush=True)
        with clock("init"):
            product.init()
        connector = stack.enter_context(product.connector())
        items = item_rows(dataset)
        if items:
            with clock("import items"):
                imported = product.import_rows("items", ITEM_FIELDS, items)
            say(f"streamrec import items: {imported.rows:,} rows, {imported.accepted:,} pass")
        with clock("import interactions"):
            imported = product.import_rows(
                "interactions", INTERACTION_FIELDS, interaction_rows(train)
            )
        say(
            f"streamrec import interactions: {imported.rows:,} rows, {imported.accepted:,} pass "
            f"({imported.seconds:.0f} s)"
        )
        if imported.accepted != len(train):
            notes.append(f"import accepted {imported.accepted} of {len(train)} training rows")
        with clock("connector catch-up"):
            product.wait_caught_up(connector, imported.accepted, progress=say)
        client = redis.Redis.from_url(redis_url)
        store = ModelStore(client, Keys(group))
        for seed in seeds:
            extra = {} if seed is None else {"STREAMREC_TRAINING_SEED": str(seed)}
            label = "default seed" if seed is None else f"seed {seed}"
            with clock("train --mode full") as timer:
                version, train_seconds = product.train(**extra)
            say(
                f"streamrec train --mode full ({label}): version {version}, {timer.elapsed():.0f} s"
            )
            served = ServingModel.from_artifacts(version, store.load(version))
            catalog = served.model.items
            with clock("in-process evaluation"):
                results["streamrec_in_process"].add(evaluate(served.model, holdouts), train_seconds)
                reference = references(served, holdouts, client, group)
                results["streamrec_serving_in_process"].add(
                    metrics_of(reference.offline, holdouts, catalog), train_seconds
                )
            for name, weight in zip(names, (None, 0.0), strict=True):
                api_env = {} if weight is None else {"STREAMREC_EXPLORATION_WEIGHT": str(weight)}
                with (
                    clock(f"api start and queries ({name})") as timer,
                    product.api(name, version, **api_env) as port,
                ):
                    answers = ask(port, users, COUNT, clients)
                    diagnostics[name].from_lists += answered_from_lists(port)
                say(f"{name}: {len(answers):,} answers, {timer.elapsed():.0f} s with the start")
                ids = {user: answer.items for user, answer in answers.items()}
                results[name].add(metrics_of(ids, holdouts, catalog), train_seconds)
                diagnose(diagnostics[name], answers, holdouts, reference, window)
        notes.append(
            f"API defaults: exploration weight {default_weight}, history window {window} events"
        )
    return ProductRun(list(results.values()), diagnostics, seconds, notes)


class Stopwatch:
    """Seconds per named step, summed when a step repeats."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[_Timer]:
        timer = _Timer(time.monotonic())
        try:
            yield timer
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + timer.elapsed()


@dataclass
class _Timer:
    started: float

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def say(line: str) -> None:
    print(line, flush=True)


# --- output ----------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    """The figures as an aligned text table, means over seeds."""
    lines = [f"{'model':<30} {'NDCG@10':>8} {'HR@10':>8} {'train s':>8} {'runs':>5}"]
    for r in results:
        if not r.ndcg10:
            lines.append(f"{r.name:<30} {'-':>8} {'-':>8} {'-':>8} {0:>5}  {r.note}")
            continue
        lines.append(
            f"{r.name:<30} {statistics.mean(r.ndcg10):>8.4f} {statistics.mean(r.hr10):>8.4f} "
            f"{statistics.mean(r.train_seconds):>8.2f} {len(r.ndcg10):>5}  {r.note}".rstrip()
        )
    return "\n".join(lines)


def diagnostics_table(diagnostics: Mapping[str, Diagnostics], window: int) -> str:
    header = (
        f"{'API answers':<26} {'users':>6} {'short':>6} {'explored slots':>14} "
        f"{'seen':>6} {'(users)':>6} {'long':>6} {'hist!=':>8} {'!=offline':>8} "
        f"{'!=stored':>8} {'lists':>6}"
    )
    lines = [header, *(diagnostics[name].line(name) for name in diagnostics)]
    lines += [
        f"short: fewer than {COUNT} items; seen: answer items already in the user's history "
        f"(users affected); long: users with more than {window} events (the API's window)",
        "hist!=: users whose history in Redis, as the API reads it, is not the last "
        f"{window} offline events in order; !=offline / !=stored: answers that differ from "
        "recommend_many in-process at weight 0 on the offline history / on the history the "
        "API reads; lists: answers served from the precomputed list in Redis",
    ]
    return "\n".join(lines)


def summary(dataset: str, results: list[Result], extra: Mapping[str, Any] | None = None) -> str:
    """The machine-readable last line."""
    measured = [r for r in results if r.ndcg10]
    ndcg = {r.name: round(statistics.mean(r.ndcg10), 4) for r in measured}
    document: dict[str, Any] = {
        "dataset": dataset,
        "ndcg10": ndcg,
        "hr10": {r.name: round(statistics.mean(r.hr10), 4) for r in measured},
    }
    if "streamrec" in ndcg and "streamrec_no_exploration" in ndcg:
        document["default_vs_no_exploration"] = _ratio(
            ndcg["streamrec"], ndcg["streamrec_no_exploration"]
        )
    best = max((ndcg[name] for name in BASELINES if name in ndcg), default=None)
    if best is not None and "streamrec" in ndcg:
        document["streamrec_vs_best_baseline"] = _ratio(ndcg["streamrec"], best)
    document.update(extra or {})
    return json.dumps(document)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


# --- the command -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", choices=DATASETS, default="ml-100k")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="train and score our model in this process (the former benchmark; for tuning)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="training runs of our model (default: 1 through the product path, 3 in-process)",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=None,
        help="our model's first seed (default: STREAMREC_TRAINING_SEED's default through the "
        "product path, 0 in-process)",
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}"
    )
    parser.add_argument(
        "--clients", type=int, default=2, help="HTTP connections asking the API at once"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="STREAMREC_NAME=VALUE",
        help="a setting for every command of the product path instead of its default "
        "(repeatable; the result is then not the default path's)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="when the product path fails, report the error and still print the baselines",
    )
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}")
    try:
        args.env = dict(pair.split("=", 1) for pair in args.env)
    except ValueError:
        parser.error("--env takes STREAMREC_NAME=VALUE")
    if args.seeds is None:
        args.seeds = 3 if args.in_process else 1
    if args.seeds < 1 or args.clients < 1:
        parser.error("--seeds and --clients must be at least 1")
    return args


def product_seeds(seeds: int, first: int | None) -> list[int | None]:
    """Training seeds of the product runs; None: the setting's default, left unset."""
    if first is None and seeds == 1:
        return [None]
    start = WorkerSettings.model_fields["training_seed"].default if first is None else first
    return list(range(start, start + seeds))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    data = datasets.load(args.dataset)
    train, holdouts = split_last(data)
    print(
        f"{args.dataset}: {len(data):,} interactions, {len(data.users):,} users, "
        f"{len(data.items):,} items; {len(train):,} for training, {len(holdouts):,} users "
        "evaluated",
        flush=True,
    )
    if args.in_process:
        first = 0 if args.first_seed is None else args.first_seed
        results = [
            measure(name, trainer, seeds, train, holdouts)
            for name, trainer, seeds in trainers(args.models, args.seeds, first)
        ]
        print(table(results))
        print(summary(args.dataset, results, {"mode": "in-process"}))
        return 0
    base = [
        measure(name, baselines()[name], [BASELINE_SEED], train, holdouts)
        for name in args.models
        if name in BASELINES
    ]
    extra: dict[str, Any] = {"mode": "product", **({"settings": args.env} if args.env else {})}
    run: ProductRun | None = None
    if "streamrec" in args.models:
        seeds = product_seeds(args.seeds, args.first_seed)
        try:
            run = product_path(args.dataset, train, holdouts, seeds, args.clients, args.env)
        except (ProductPathError, TimeoutError) as exc:
            if not args.keep_going:
                raise
            extra["error"] = str(exc)[:500]
            print(f"the product path failed: {exc}", file=sys.stderr, flush=True)
    results = base + (run.results if run else [])
    print()
    print(table(results))
    if run is not None:
        window = ApiSettings.model_fields["history_length"].default
        print()
        print(diagnostics_table(run.diagnostics, window))
        print()
        print("seconds: " + ", ".join(f"{step} {s:.0f}" for step, s in run.seconds.items()))
        for note in run.notes:
            print(f"note: {note}")
        extra["seconds"] = {step: round(s, 1) for step, s in run.seconds.items()}
    extra["total_seconds"] = round(time.monotonic() - started, 1)
    print(summary(args.dataset, results, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
