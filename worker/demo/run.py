"""`streamrec demo`, step by step: from nothing to live recommendations that change as events
stream in, on local defaults.

Services (started when none answers) -> dataset group (schemas, tracker, filters) -> the
example events validated -> connector -> MovieLens-100K imported through the topics ->
FULL training, published -> API -> worker (on its schedule, the demo's FULL counting as
its first) -> a few users' recommendations -> the held-back events replayed live with the
stream's figures -> the same users' recommendations after their new events. Everything
the demo started is stopped at the end (or on Ctrl-C), unless `--keep-running` leaves the
services, connector, API and worker up.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from connector import demo as steps
from connector import redis_client
from connector.bulk_import import publish_rows
from connector.devservices import process
from connector.devservices.local import LocalServices
from connector.devservices.settings import DevSettings
from connector.exceptions import DevServiceError
from connector.keys import Keys
from connector.settings import ConnectorSettings
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore
from connector.topic_state import connector_lag, topic_records
from worker.demo import data as demo_data
from worker.demo import view as demo_view
from worker.demo.processes import Children, save_state
from worker.demo.replay import Row, Schedule, replay, shift_rows
from worker.settings import WorkerSettings
from worker.training.runs import run as train_run

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

Say = Callable[[str], None]
_EPOCH = re.compile(r"^epoch (\d+)/(\d+)")


@dataclass(frozen=True)
class DemoOptions:
    """What the demo imports, replays and shows (the command's options)."""

    max_interactions: int = 20_000
    replay_events: int = 1_000
    replay_seconds: float = 20.0
    speed: float | None = None
    users: int = 3
    epochs: int = 10
    api_port: int = 8080
    keep_running: bool = False
    generated: bool = False


@dataclass
class Timings:
    """Wall-clock seconds per step, for the closing summary."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, say: Say, title: str) -> Iterator[None]:
        say(f"\n== {title}")
        started = time.monotonic()
        yield
        self.steps.append((title, time.monotonic() - started))

    def summary(self) -> list[str]:
        total = sum(seconds for _, seconds in self.steps)
        lines = [f"  {seconds:7.1f} s  {title}" for title, seconds in self.steps]
        return [*lines, f"  {total:7.1f} s  in all"]


def _bar(total: int, label: str) -> ProgressBar[int]:
    return click.progressbar(length=total, label=label, file=click.get_text_stream("stderr"))


def run(options: DemoOptions, settings: ConnectorSettings, dev: DevSettings, say: Say) -> None:
    """Every step of the demo; stops what it started unless asked to keep it running."""
    Demo(options, settings, dev, say).run()


@dataclass
class Prepared:
    """What the import left for the live part: the data, and the rows imported and held back."""

    data: demo_data.DemoData
    imported: list[Row]
    held_back: list[Row]
    tracking_id: str


class Demo:
    """One run of the demo: its settings, the processes and services it started, timings."""

    def __init__(
        self, options: DemoOptions, settings: ConnectorSettings, dev: DevSettings, say: Say
    ) -> None:
        self.options, self.settings, self.dev, self.say = options, settings, dev, say
        self.timings = Timings()
        self.services: LocalServices | None = None
        self.children = Children(dev.dev_dir / "demo", {**os.environ, **_env(settings)})

    def run(self) -> None:
        """The steps in order; the `finally` stops what was started, unless kept."""
        kept = False
        try:
            with self.step("local services"):
                self.services = steps.ensure_services(self.settings, self.dev)
                how = "started here" if self.services else "already running"
                where = f"Kafka {self.settings.kafka_bootstrap}, Redis {self.settings.redis_url}"
                self.say(f"{where} ({how})")
            tracking_id = self._group()
            self._connector()
            prepared = self._import(tracking_id)
            self._train()
            api = self._api()
            self._worker()
            self._live(api, prepared)
            self.say("\n== timings")
            for line in self.timings.summary():
                self.say(line)
            if self.options.keep_running:
                self._keep(api.base_url)
                kept = True
        finally:
            if not kept:
                self._stop()

    def step(self, title: str) -> AbstractContextManager[None]:
        """A timed step with its heading."""
        return self.timings.step(self.say, title)

    def _group(self) -> str:
        with self.step(f"dataset group {self.settings.dataset_group!r}"):
            for entry in steps.register_examples(self.settings):
                self.say(f"registered {entry.dataset} schema v{entry.version} (id {entry.id})")
            tracking_id = steps.demo_tracker(self.settings)
            self.say(f"event tracker {tracking_id}")
            for name in steps.create_filters(self.settings):
                self.say(f"filter {name}: {steps.FILTERS[name]}")
        with self.step("example events, validated as the connector does"):
            offsets = steps.publish_examples(self.settings, tracking_id)
            self.say(f"published {len(offsets)} PutEvents records to {self.settings.topics.events}")
            for outcome in steps.read_and_validate(self.settings, tracking_id, offsets):
                self.say(steps.describe(outcome))
        return tracking_id

    def _connector(self) -> None:
        with self.step("connector"):
            port = process.free_port()
            ready = f"http://127.0.0.1:{port}/readyz"
            env = {"STREAMREC_CONNECTOR_WEB_PORT": str(port)}
            self.children.start("connector", ["connector"], ready, 180, env)
            self.say(
                f"streamrec connector consumes {self.settings.topics.events} (:{port}/metrics)"
            )

    def _import(self, tracking_id: str) -> Prepared:
        with self.step("dataset"):
            cache = WorkerSettings().worker_cache_dir / "datasets"
            data, failure = demo_data.load(cache, self.options.generated)
            if failure:
                self.say(f"MovieLens-100K is not available ({failure});")
                self.say("using GENERATED data instead: the titles are made up.")
            data = data.sliced(self.options.max_interactions)
            imported, held_back = data.split(self.options.replay_events)
            self.say(
                f"{data.source}: {len(data.items):,} items, {len(data.users):,} users, "
                f"{len(data.interactions):,} ratings: {len(imported):,} imported, "
                f"{len(held_back):,} held back for the live replay"
            )
            cutoff = int(held_back[0]["TIMESTAMP"]) if held_back else int(time.time())
            imported = shift_rows(imported, int(time.time()) - cutoff)
        with self.step("import through the topics (the bulk import path)"):
            if 0 < len(imported) <= topic_records(self.settings, self.settings.topics.interactions):
                self.say("this dataset group holds the import already: skipped (--group NEW)")
            else:
                _publish(self.settings, data, imported, tracking_id)
            _wait_for_connector(self.settings, len(data.items) + len(data.users) + len(imported))
        return Prepared(data, imported, held_back, tracking_id)

    def _train(self) -> str:
        with self.step("training (FULL) and publishing the model"):
            worker = WorkerSettings(
                dataset_group=self.settings.dataset_group,
                kafka_bootstrap=self.settings.kafka_bootstrap,
                redis_url=self.settings.redis_url,
                training_epochs=self.options.epochs,
            )
            with _bar(self.options.epochs, "training epochs") as bar:
                version = train_run("full", worker, report=lambda line: _epoch(bar, line))
            store = ModelStore(redis_client.connect(self.settings), Keys(worker.dataset_group))
            meta = store.meta(version)
            metrics = meta.get("metrics", {})
            figures = "  ".join(
                f"{k}={metrics[k]:.4f}" for k in ("ndcg@10", "hr@10") if k in metrics
            )
            self.say(f"published model version {version} ({meta.get('training_seconds', 0):.1f} s)")
            self.say(f"held-out metrics: {figures}")
        return version

    def _api(self) -> demo_view.Api:
        with self.step("HTTP API"):
            port = self.options.api_port
            if port == 0 or process.port_in_use(port):
                port = process.free_port()
            base = f"http://127.0.0.1:{port}"
            args = ["api", "--host", "127.0.0.1", "--port", str(port)]
            self.children.start("api", args, f"{base}/readyz", 120)
            self.say(f"streamrec api answers on {base}")
        return demo_view.Api(base)

    def _worker(self) -> None:
        """`streamrec worker`, which does not train at once: the demo's FULL just ran, and a
        second one would compete with the replay for the CPU and change the model mid-demo."""
        with self.step("worker"):
            port = process.free_port()
            env = {"STREAMREC_WORKER_WEB_PORT": str(port), "STREAMREC_WORKER_RUN_ON_START": "false"}
            self.children.start("worker", ["worker"], f"http://127.0.0.1:{port}/readyz", 120, env)
            every = WorkerSettings()
            self.say(
                f"streamrec worker on its schedule (:{port}/metrics): UPDATE every "
                f"{every.worker_update_interval_seconds:,.0f} s, FULL every "
                f"{every.worker_full_interval_seconds:,.0f} s (the FULL above was its first)"
            )

    def _live(self, api: demo_view.Api, prepared: Prepared) -> None:
        client = redis_client.connect(self.settings)
        lists = RecommendationLists(client, Keys(self.settings.dataset_group), 3600)
        show = demo_view.UserView(api, lists, prepared.data.titles(), self.say)
        schedule = Schedule.plan(
            prepared.held_back, self.options.replay_seconds, self.options.speed
        )
        history = Counter(row["USER_ID"] for row in prepared.imported)
        users = schedule.users(self.options.users, history)
        with self.step("recommendations before the replay"):
            before = {user: show.before(user, prepared.imported) for user in users}
            if users:
                show.filtered(users[0], before[users[0]])
        with self.step(f"live replay ({schedule.speed:,.0f}x event time)"):
            self.say(f"replaying {len(schedule.rows):,} held-back ratings in time order")
            figures = demo_view.LiveFigures(self.settings, client)
            replay(
                self.settings,
                schedule,
                prepared.tracking_id,
                lambda sent, seconds: self.say(figures.line(sent, seconds)),
            )
            _wait_for_connector(self.settings, len(schedule.rows), timeout=120)
        with self.step("recommendations after the replay"):
            for user in users:
                show.after(user, schedule.rows, before[user])

    def _keep(self, api: str) -> None:
        save_state(self.dev, self.children.started, self.services is not None, api)
        group = self.settings.dataset_group
        self.say("\n== still running (--keep-running)")
        self.say(f"the connector, the API and the worker of dataset group {group!r}:")
        self.say(
            f"  curl -s {api}/recommendations -H 'Content-Type: application/json' "
            f'-d \'{{"userId": "1", "numResults": 5}}\''
        )
        self.say(f"  STREAMREC_DATASET_GROUP={group} streamrec status")
        self.say("stop them (and the local Kafka and Redis, if this demo started them):")
        self.say("  streamrec demo --stop")

    def _stop(self) -> None:
        stopped = self.children.stop_all()
        if stopped:
            self.say(f"stopped the {', '.join(stopped)}")
        if self.services is not None:
            self.services.down()
            self.say("stopped the local Kafka and Redis this demo started")


def _env(settings: ConnectorSettings) -> dict[str, str]:
    """The environment of the demo's subprocesses: the services and group in use."""
    return {
        "STREAMREC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMREC_REDIS_URL": settings.redis_url,
        "STREAMREC_DATASET_GROUP": settings.dataset_group,
    }


def _epoch(bar: ProgressBar[int], line: str) -> None:
    """Advance the training bar on each "epoch i/n" progress line."""
    match = _EPOCH.match(line)
    if match:
        bar.length = int(match.group(2))
        bar.update(1)


def _publish(
    settings: ConnectorSettings, data: demo_data.DemoData, imported: list[Row], tracking_id: str
) -> None:
    for dataset, rows in (("items", data.items), ("users", data.users), ("interactions", imported)):
        with _bar(len(rows), f"publishing {dataset:<12}") as bar:
            summary = publish_rows(settings, dataset, _counted(rows, bar), tracking_id)
        click.echo(f"{dataset}: {summary.accepted:,} of {summary.rows:,} rows pass the checks")


def _counted(rows: list[Row], bar: ProgressBar[int]) -> Iterator[Row]:
    for row in rows:
        yield row
        bar.update(1)


def _wait_for_connector(settings: ConnectorSettings, expected: int, timeout: float = 600) -> None:
    """Until the connector has committed every record published so far."""
    deadline = time.monotonic() + timeout
    with _bar(expected, "connector validating") as bar:
        while (lag := connector_lag(settings)) > 0:
            bar.update(max(0, expected - lag - bar.pos))
            if time.monotonic() > deadline:
                raise DevServiceError(f"the connector still has {lag:,} records to process")
            time.sleep(0.5)
        bar.update(max(0, expected - bar.pos))
    click.echo("the connector has validated and stored every record")
