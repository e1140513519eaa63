"""Soak: the connector, the API and the worker together for a bounded time, at a steady event
rate with GetRecommendations alongside and model runs in the middle, then an exact
reconciliation of every event produced.

    python bench/soak.py [--minutes 10] [--rate 1000] [--qps 50] [--users 10000]
                         [--items 5000] [--seed-events 20000] [--warm-up 60]
                         [--update-seconds 150] [--epochs 3]
                         [--no-faults] [--redis-down-at S] [--redis-down-seconds 60]
                         [--redis-grace 15] [--kill-connector-at S]

Steps: a dataset group (schemas, topics, tracker); `streamrec connector` ingests
--seed-events events; `streamrec train --mode full` publishes the first model; then
`streamrec api`, `streamrec worker` (a FULL when it starts, as a restarted worker does, one
in the middle of the run, an UPDATE every --update-seconds) and a load generator sending
--qps GetRecommendations per second (bench/soak_load.py, its own process) run for --minutes
while this process publishes --rate events/s, one per PutEvents record, keyed by user.
Every 5 s it samples events sent and counted in Redis, the RSS of each process (with its
child processes: the connector's list refresh processes) and the model version the API
serves.

The fault phase (on unless --no-faults; bench/soak_faults.py): Redis is stopped for
--redis-down-seconds (60) from --redis-down-at seconds into the steady phase (default 30%
of it) and started again with its data (its own redis-server with an append-only file), and
the connector is SIGKILLed once at --kill-connector-at (default 70%) and restarted by the soak
at once. The connector and the API must survive the outage: the API may answer 503 while
Redis is away (and --redis-grace seconds after, 15 by default); those 503s are counted apart
(`api_503_redis_down`), every other error response, 503s outside that window included, is
in `errors`. The connector's crash window is the stretch of the Interactions dataset appended
from the kill until the restarted connector has committed every event that existed at the
kill (measured in offsets); only there may a second copy of an event legitimately appear.

Prints throughput, API latency percentiles and RSS per minute; RSS of each process after
--warm-up seconds and at the end; error responses; and the reconciliation once the connector
has drained: each event in the Interactions dataset exactly once after dropping repeats of a
(key, marker) (`lost`, `duplicated_distinct`), every row beyond one per event before
that (`duplicated`, split into `duplicated_in_crash_window` and
`duplicated_outside_crash_window`), the Redis counters, each user's history length, the
dead-letter topic; then `rebuild_equal`: with every process stopped, the group's Redis state
is read, every key of the group but model versions and served lists is deleted, `streamrec
rebuild` runs, and the state is compared key by key, value by value (TTLs aside; precomputed
lists, the active set, models and served lists are not compared: rebuild does not restore
them as they were), the first differing keys printed. Targets: no process grows more than
10% after the warm-up (a restarted connector: in each of its two lives), nothing lost,
nothing duplicated outside the crash window, no error response but the outage's 503s, the
rebuilt state equal to the live one. The memory target is stated twice: raw, over every process
(`mem_growth_pct`, `targets_met`), and over the processes whose working set is fixed, the
connector and the API (`mem_growth_pct_fixed_working_set`, `targets_met_fixed_working_set`),
since the worker holds its training data, which grows by design: its growth is also given per
100,000 rows added after the warm-up (`worker_mb_per_100k_rows`). Starts a local Kafka broker and
redis-server unless STREAMREC_KAFKA_BOOTSTRAP and STREAMREC_REDIS_URL are set; with the fault
phase, Redis is always its own (it refuses STREAMREC_REDIS_URL: it would stop a shared
Redis) and the broker is STREAMREC_KAFKA_BOOTSTRAP's when set. Logs of every process stay in
the run folder it names (a killed connector's in connector.log, its successor's in
connector-2.log, the rebuild's in rebuild.log). The last line printed is one JSON object of
the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import soak_report as report
from bench.ingest import connector_env, counted, prepare
from bench.services import services
from bench.soak_events import Reconciliation, Traffic, reconcile_dataset, topic_size
from bench.soak_faults import (
    Faults,
    OwnRedis,
    committed_up_to,
    end_offsets,
    rebuild_check,
    services_with_own_redis,
)
from bench.soak_procs import Child, api_version, get, prometheus, start, wait_until
from connector import logs
from connector.devservices.process import free_port
from connector.keys import Keys, Subject
from connector.settings import ConnectorSettings
from connector.trackers import open_trackers

SAMPLE_SECONDS = 5.0
MEMORY_TARGET_PCT = 10.0
ROOT = Path(__file__).resolve().parents[1]  # the checkout whose code every process runs


class Publisher:
    """Produces the traffic's events to the events topic; counts what the broker refused."""

    def __init__(self, settings: ConnectorSettings, traffic: Traffic) -> None:
        tracker = open_trackers(settings).of_group(settings.dataset_group)
        assert tracker is not None, "prepare() creates the tracker"
        self.tracking_id, self.traffic, self.topic = (
            tracker.tracking_id,
            traffic,
            settings.topics.events,
        )
        self.producer = Producer({**settings.kafka_config(), "linger.ms": 5})
        self.sent, self.failed = 0, 0

    def send(self, n: int) -> None:
        user, event = self.traffic.event(n)
        record = {
            "trackingId": self.tracking_id,
            "userId": user,
            "sessionId": f"s-{user}",
            "eventList": [event],
        }
        value, key = orjson.dumps(record), user.encode()
        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.sent = n + 1

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failed += 1

    def flush(self) -> None:
        left = self.producer.flush(120)
        self.failed += left


@dataclass
class Run:
    """Everything one soak run holds."""

    args: argparse.Namespace
    settings: ConnectorSettings
    traffic: Traffic
    publisher: Publisher
    workdir: Path
    redis_server: OwnRedis | None = None  # the soak's own, when the fault phase stops it
    client: redis.Redis = field(init=False)
    keys: Keys = field(init=False)
    ports: dict[str, int] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    killed: list[Child] = field(default_factory=list)  # connectors SIGKILLed by the faults
    faults: Faults | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    last_counted: int = 0

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.settings.redis_url)
        self.keys = Keys(self.settings.dataset_group)

    @property
    def seconds(self) -> float:
        return float(self.args.minutes * 60)

    def counted(self) -> int:
        """Events counted in Redis; the last known count while Redis does not answer."""
        try:
            self.last_counted = counted(self.client, self.keys)
        except redis.RedisError:
            pass
        return self.last_counted

    def env(self, name: str) -> dict[str, str]:
        """The environment of process `name`."""
        env = connector_env(self.settings)
        # this checkout's packages, not those of the editable install the entry point names
        paths = [str(ROOT), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
        self.ports.setdefault("connector", int(env["STREAMREC_CONNECTOR_WEB_PORT"]))
        env["STREAMREC_CONNECTOR_WEB_PORT"] = str(self.ports["connector"])
        if name == "api":
            env |= {"STREAMREC_API_PORT": str(self.ports["api"]), "STREAMREC_API_HOST": "127.0.0.1"}
        if name in ("worker", "train"):
            env |= {
                "STREAMREC_WORKER_CACHE_DIR": str(self.workdir / "cache"),
                "STREAMREC_WORKER_WEB_PORT": str(self.ports["worker"]),
                "STREAMREC_TRAINING_EPOCHS": str(self.args.epochs),
                # a FULL when the worker starts and one in the middle of the run
                "STREAMREC_WORKER_FULL_INTERVAL_SECONDS": str(self.seconds / 2),
                "STREAMREC_WORKER_UPDATE_INTERVAL_SECONDS": str(self.args.update_seconds),
            }
        return env


def main() -> None:
    logs.configure(verbose=False)
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-soak-"))
    print(f"run folder (logs, samples): {workdir}", flush=True)
    if args.faults:
        with services_with_own_redis() as (kafka, server):
            base = ConnectorSettings(kafka_bootstrap=kafka, redis_url=server.url)
            figures = soak(base, args, workdir, server)
    else:
        with services() as (kafka, redis_url):
            base = ConnectorSettings(kafka_bootstrap=kafka, redis_url=redis_url)
            figures = soak(base, args, workdir, None)
    print(json.dumps(figures))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="steady phase length")
    parser.add_argument("--rate", type=int, default=1000, help="events/s")
    parser.add_argument("--qps", type=float, default=50.0, help="GetRecommendations/s")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--seed-events", type=int, default=20_000, help="before the first FULL")
    parser.add_argument("--warm-up", type=float, help="seconds; default min(60, 20%% of the run)")
    parser.add_argument("--update-seconds", type=float, help="default: a quarter of the run")
    parser.add_argument("--epochs", type=int, default=3, help="most epochs of a FULL run")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds")
    parser.add_argument(
        "--no-faults", dest="faults", action="store_false", help="no Redis outage, no SIGKILL"
    )
    parser.add_argument("--redis-down-at", type=float, help="seconds; default 30%% of the run")
    parser.add_argument("--redis-down-seconds", type=float, default=60.0)
    parser.add_argument(
        "--redis-grace", type=float, default=15.0, help="seconds after Redis is back (503s)"
    )
    parser.add_argument("--kill-connector-at", type=float, help="seconds; default 70%% of run")
    args = parser.parse_args()
    seconds = args.minutes * 60
    args.warm_up = min(60.0, seconds * 0.2) if args.warm_up is None else args.warm_up
    args.update_seconds = args.update_seconds or seconds / 4
    if args.redis_down_at is None:
        args.redis_down_at = seconds * 0.3
    if args.kill_connector_at is None:
        args.kill_connector_at = seconds * 0.7
    redis_back = args.redis_down_at + args.redis_down_seconds
    if args.faults and (redis_back >= seconds or args.kill_connector_at >= seconds):
        parser.error("the faults must happen within the run (--minutes)")
    if args.faults and args.redis_down_at <= args.kill_connector_at <= redis_back:
        parser.error("the connector is killed while Redis is down: the windows would overlap")
    return args


def soak(
    base: ConnectorSettings, args: argparse.Namespace, workdir: Path, server: OwnRedis | None
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    settings = prepare(base, f"soak-{run_id}")
    t0 = int(time.time()) - args.seed_events // args.rate
    traffic = Traffic(run_id, seed=7, users=args.users, items=args.items, rate=args.rate, t0=t0)
    run = Run(args, settings, traffic, Publisher(settings, traffic), workdir, server)
    run.ports |= {"api": free_port(), "worker": free_port()}
    check_code(run)
    try:
        start_services(run)
        steady = run_steady(run)
        return finish(run, steady)
    finally:
        for child in reversed(run.children.values()):
            child.stop()


def check_code(run: Run) -> None:
    """Fail unless the processes the soak starts import this checkout's packages."""
    probe = "import bench, connector, worker; print(connector.__file__, worker.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=run.env("connector"),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not all(Path(path).is_relative_to(ROOT) for path in out):
        raise SystemExit(f"the soak's processes would not run {ROOT}'s code: {out}")
    print(f"processes run the code of {ROOT} ({out[0]})", flush=True)


def connector_command() -> list[str]:
    return ["streamrec", "connector"]


def kill_connector(run: Run) -> None:
    """SIGKILL the connector (its list refresh process exits with it)."""
    connector = run.children["connector"]
    connector.process.kill()
    connector.process.wait(30)
    run.killed.append(connector)


def restart_connector(run: Run) -> None:
    env, log = run.env("connector"), f"connector-{len(run.killed) + 1}"
    run.children["connector"] = start("connector", connector_command(), env, run.workdir, log)


def start_services(run: Run) -> None:
    """Connector, seed events, the first FULL, then the API and the worker, each ready."""
    connector = start("connector", connector_command(), run.env("connector"), run.workdir)
    run.children["connector"] = connector
    started, events = time.perf_counter(), run.args.seed_events
    for n in range(events):
        run.publisher.send(n)
    run.publisher.flush()
    wait_until(lambda: run.counted() >= events, connector, 900, f"{events} seed events")
    run.figures["seed_s"] = round(time.perf_counter() - started, 1)
    print(f"seeded {events:,} events in {run.figures['seed_s']} s", flush=True)
    started = time.perf_counter()
    train = ["streamrec", "-v", "train", "--mode", "full"]
    trainer = start("train", train, run.env("train"), run.workdir)
    if trainer.process.wait(1800) != 0:
        raise RuntimeError(f"the first FULL failed; see {trainer.log}")
    run.figures["first_full_s"] = round(time.perf_counter() - started, 1)
    print(f"first FULL model published in {run.figures['first_full_s']} s", flush=True)
    api = start("api", ["streamrec", "api"], run.env("api"), run.workdir)
    run.children["api"] = api
    wait_until(lambda: api_version(run.ports["api"]) is not None, api, 300, "the API")
    worker = start("worker", ["streamrec", "-v", "worker"], run.env("worker"), run.workdir)
    run.children["worker"] = worker
    healthy = lambda: get(run.ports["worker"], "/healthz")[0] == 200  # noqa: E731
    wait_until(healthy, worker, 120, "the worker")


def run_steady(run: Run) -> dict[str, Any]:
    """--rate events/s for --minutes with the load generator alongside; samples and loads."""
    rate, seconds, publisher = run.args.rate, run.seconds, run.publisher
    start_at = time.time() + 2.0
    load_out = run.workdir / "load.json"
    url = f"http://127.0.0.1:{run.ports['api']}/recommendations"
    load = [url, str(run.args.users), str(run.args.qps), str(seconds), str(start_at)]
    command = [sys.executable, str(Path(__file__).with_name("soak_load.py")), *load]
    run.children["load"] = start("load", [*command, str(load_out)], dict(os.environ), run.workdir)
    time.sleep(max(0.0, start_at - time.time()))
    sampler = Sampler(run, start_at)
    sampler.take()
    sampler.start()
    print(f"steady: {rate:,} events/s, {run.args.qps:g} requests/s, {seconds:.0f} s", flush=True)
    if run.redis_server is not None:
        args = run.args
        run.faults = Faults(
            run.settings,
            run.redis_server,
            (lambda: kill_connector(run), lambda: restart_connector(run)),
            lambda: run.children["connector"].alive(),
            (start_at, args.redis_down_at, args.redis_down_seconds, args.kill_connector_at),
        )
        run.faults.start()
    first, burst = publisher.sent, max(1, rate // 100)  # bursts every 10 ms
    for i in range(int(rate * seconds)):
        if i % burst == 0:
            time.sleep(max(0.0, start_at + i / rate - time.time()))
            publisher.producer.poll(0)
        publisher.send(first + i)
    produced_s = time.time() - start_at
    sampler.stop.set()
    sampler.join()
    sampler.take()
    publisher.flush()
    if run.faults is not None:
        run.faults.join()  # the restarted connector has caught up (or timed out)
        if run.faults.error is not None:
            raise RuntimeError("the fault phase failed") from run.faults.error
    run.children["load"].process.wait(seconds + 120)
    results = json.loads(load_out.read_text()) if load_out.exists() else None
    samples = [vars(s) for s in sampler.samples]
    (run.workdir / "samples.json").write_text(json.dumps(samples))
    return {
        "samples": sampler.samples,
        "load": results or {"requests": [], "error_samples": ["no output"], "max_lag_ms": None},
        "start_at": start_at,
        "produced_s": produced_s,
        "steady_events": publisher.sent - first,
    }


class Sampler(threading.Thread):
    """Every SAMPLE_SECONDS: events sent and counted, RSS of each process, served version."""

    def __init__(self, run: Run, started: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.run_, self.started = run, started
        self.samples: list[report.Sample] = []
        self.stop = threading.Event()

    def take(self) -> report.Sample:
        children = self.run_.children
        sample = report.Sample(
            t=round(time.time() - self.started, 2),
            sent=self.run_.publisher.sent,
            counted=self.run_.counted(),
            rss_mb={name: child.rss_mb() for name, child in children.items()},
            version=api_version(self.run_.ports["api"]),
            alive={name: child.alive() for name, child in children.items()},
            parts_mb={
                f"{name} {part}": mb
                for name in ("connector", "worker")
                for part, mb in children[name].rss_parts_mb().items()
            },
        )
        self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS - (time.time() - self.started) % SAMPLE_SECONDS):
            sample = self.take()
            if int(sample.t) % 60 < SAMPLE_SECONDS:
                rss = ", ".join(f"{k} {v or 0:.0f}" for k, v in sample.rss_mb.items())
                print(
                    f"  t={sample.t:.0f}s sent {sample.sent:,} counted {sample.counted:,}"
                    f" RSS MiB: {rss}",
                    flush=True,
                )


def finish(run: Run, steady: dict[str, Any]) -> dict[str, Any]:
    """Drain, stop every process, reconcile and print; the figures."""
    total, started = run.publisher.sent, time.perf_counter()
    connector = run.children["connector"]
    # Drained: every event counted in Redis and every offset committed (a count alone would
    # pass early if events were counted twice).
    ends = end_offsets(run.settings, run.settings.topics.events)
    drained = lambda: run.counted() >= total and committed_up_to(run.settings, ends)  # noqa: E731
    wait_until(drained, connector, run.args.drain_timeout, "the drain")
    drain_s = time.perf_counter() - started
    time.sleep(2)  # anything counted twice would show by now
    in_redis = run.counted()
    runs = prometheus(run.ports["worker"], "streamrec_worker_runs_total")
    ingest = prometheus(run.ports["connector"], "streamrec_duplicates_total")
    ingest |= prometheus(run.ports["connector"], "streamrec_dead_letters_total")
    crashed = [name for name in report.PROCESSES if not run.children[name].alive()]
    exits = {name: child.stop() for name, child in reversed(run.children.items())}
    print("reconciling the Interactions dataset and Redis", flush=True)
    window = run.faults.log.in_crash_window if run.faults else lambda _p, _o: False
    dataset = reconcile_dataset(run.settings, run.traffic, total, window)
    histories = history_mismatches(run, total)
    dead = topic_size(run.settings, run.settings.topics.deadletter)
    print("rebuilding Redis from the datasets and comparing it with the live state", flush=True)
    rebuilt = rebuild_check(run.client, run.settings.dataset_group, run.env("rebuild"), run.workdir)
    log_errors = {name: child.log_errors() for name, child in run.children.items()}
    for n, child in enumerate(run.killed, 1):
        log_errors[f"connector (killed {n})"] = child.log_errors()
    checks = {
        "counted_in_redis": in_redis,
        "drain_s": round(drain_s, 1),
        "dataset": dataset,
        "histories": histories,
        "dead_letters": dead,
        "worker_runs": runs,
        "connector_counters": ingest,
        "crashed": crashed,
        "exits": exits,
        "log_errors": log_errors,
        "rebuild": rebuilt,
        "faults": run.faults.log.relative(steady["start_at"]) if run.faults else None,
    }
    return summarise(run, steady, checks)


def history_mismatches(run: Run, total: int) -> dict[str, Any]:
    """Users whose history does not hold min(their events, history length) entries."""
    expected = run.traffic.history_counts(total)
    length, users = run.settings.history_length, sorted(expected)
    pipe = run.client.pipeline(transaction=False)
    for user in users:
        pipe.zcard(run.keys.history(Subject("u", user)))
    wrong = [
        (user, got, min(expected[user], length))
        for user, got in zip(users, pipe.execute(), strict=True)
        if got != min(expected[user], length)
    ]
    return {"users": len(users), "mismatches": len(wrong), "sample": wrong[:5]}


def summarise(run: Run, steady: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    """Print the tables; the figures of the final JSON line."""
    samples: list[report.Sample] = steady["samples"]
    load = steady["load"]
    requests = load["requests"]
    rows = report.per_minute(samples, requests, steady["start_at"], run.seconds)
    restarts = _restarts(run, steady["start_at"])
    mem = report.memory(samples, run.args.warm_up, restarts=restarts)
    explained = report.data_following(samples, mem, run.args.warm_up)
    latencies = [r[1] for r in requests if r[2] in report.OK_STATUSES]
    outage = run.faults.log.redis_window(run.args.redis_grace) if run.faults else None
    during = [r for r in requests if outage and outage[0] <= r[0] <= outage[1]]
    unavailable = sum(1 for r in during if r[2] == 503)  # allowed while Redis is away
    errors = sum(1 for r in requests if r[2] not in report.OK_STATUSES) - unavailable
    versions = list(dict.fromkeys(s.version for s in samples if s.version))
    dataset: Reconciliation = checks["dataset"]
    rebuilt = checks["rebuild"]
    growth = [m["growth_pct"] for m in mem.values() if m["growth_pct"] is not None]
    first, last = samples[0], max(samples, key=lambda s: s.t)
    figures: dict[str, Any] = {
        "minutes": run.args.minutes,
        "rate": run.args.rate,
        "qps": run.args.qps,
        "events": dataset.produced,
        "steady_events": steady["steady_events"],
        "produced_per_s": round(steady["steady_events"] / steady["produced_s"]),
        "ingested_per_s": round((last.counted - first.counted) / max(last.t - first.t, 1e-9)),
        "max_backlog_events": max(s.sent - s.counted for s in samples),
        "drain_s": checks["drain_s"],
        "api_requests": len(requests),
        "api_p50_ms": report.percentile(latencies, 50),
        "api_p95_ms": report.percentile(latencies, 95),
        "api_p99_ms": report.percentile(latencies, 99),
        "api_max_ms": round(max(latencies), 1) if latencies else None,
        "api_max_lag_ms": load.get("max_lag_ms"),
        "errors": errors + run.publisher.failed,
        "api_errors": errors,
        "api_503_redis_down": unavailable,
        "api_errors_in_redis_window": sum(
            1 for r in during if r[2] not in (*report.OK_STATUSES, 503)
        ),
        "produce_failures": run.publisher.failed,
        "empty_lists": sum(1 for r in requests if r[2] == 299),
        "load_generator_ok": bool(requests) or run.args.qps * run.seconds < 1,
        "faults": run.faults is not None,
        "lost": dataset.lost,
        "duplicated": dataset.duplicated,
        "duplicated_in_crash_window": dataset.duplicated_in_crash_window,
        "duplicated_outside_crash_window": dataset.duplicated_outside_crash_window,
        "duplicated_distinct": dataset.duplicated_distinct,
        "most_copies": dataset.most_copies,
        "rebuild_equal": rebuilt["rebuild_equal"],
        "rebuild_keys_differing": rebuilt["keys_differing"],
        "rebuild_s": rebuilt["rebuild_s"],
        "unexpected_rows": dataset.unexpected,
        "dataset_records": dataset.records,
        "dataset_repeats": dataset.repeats,
        "redis_counted_minus_produced": checks["counted_in_redis"] - dataset.produced,
        "history_mismatches": checks["histories"]["mismatches"],
        "dead_letters": checks["dead_letters"],
        "mem_start_mb": {k: m["start_mb"] for k, m in mem.items()},
        "mem_end_mb": {k: m["end_mb"] for k, m in mem.items()},
        "mem_peak_mb": {k: m["peak_mb"] for k, m in mem.items()},
        "mem_growth_pct_by_process": {k: m["growth_pct"] for k, m in mem.items()},
        "mem_parts_mb": {  # own process and descendants apart: [start, end, growth %]
            k: [m["start_mb"], m["end_mb"], m["growth_pct"]]
            for k, m in report.memory(samples, run.args.warm_up, True, restarts).items()
        },
        "mem_growth_pct": max(growth) if growth else None,  # raw: every process
        "mem_growth_pct_fixed_working_set": explained["fixed_growth_pct"],  # connector, API
        "worker_mb_per_100k_rows": explained["worker_mb_per_100k_rows"],
        "worker_rows_after_warm_up": [explained["rows_start"], explained["rows_end"]],
        "model_versions_served": len(versions),
        "worker_runs": _runs(checks["worker_runs"]),
        "crashed": checks["crashed"],
        "log_error_lines": {k: len(v) for k, v in checks["log_errors"].items()},
        "seed_s": run.figures.get("seed_s"),
        "first_full_s": run.figures.get("first_full_s"),
        "uncommitted_at_kill": (checks["faults"] or {}).get("uncommitted_at_kill"),
        "fault_times_s": {
            k: v for k, v in (checks["faults"] or {}).items() if isinstance(v, float)
        },
    }
    figures["targets_met"] = _targets_met(figures, figures["mem_growth_pct"])
    # the same targets, memory read for the processes whose working set is fixed (the
    # worker's growth follows its dataset and is stated per row instead)
    fixed = figures["mem_growth_pct_fixed_working_set"]
    figures["targets_met_fixed_working_set"] = _targets_met(figures, fixed)
    kept = {"figures": figures, "minutes": rows, "checks": {**checks, "dataset": vars(dataset)}}
    (run.workdir / "result.json").write_text(json.dumps(kept, default=str))
    print_all(run, rows, (mem, explained), figures, checks, load, versions)
    return figures


def _runs(metrics: dict[str, float]) -> dict[str, int]:
    """{"full/published": 2, ...} from the worker's streamrec_worker_runs_total samples."""
    runs = {}
    for name, value in metrics.items():
        labels = dict(part.split("=", 1) for part in name[name.index("{") + 1 : -1].split(","))
        runs[f"{labels['mode'].strip(chr(34))}/{labels['outcome'].strip(chr(34))}"] = int(value)
    return runs


def _restarts(run: Run, start_at: float) -> dict[str, tuple[float, float]]:
    """{"connector": (killed, restarted)} in seconds of the steady phase, if it was killed."""
    log = run.faults.log if run.faults else None
    if log is None or log.connector_killed is None or log.connector_restarted is None:
        return {}
    return {"connector": (log.connector_killed - start_at, log.connector_restarted - start_at)}


def _targets_met(figures: dict[str, Any], growth: float | None) -> bool:
    return bool(
        figures["lost"] == 0
        and figures["duplicated_outside_crash_window"] == 0
        and figures["duplicated_distinct"] == 0
        and figures["rebuild_equal"]
        and figures["unexpected_rows"] == 0
        and figures["errors"] == 0
        and figures["history_mismatches"] == 0
        and figures["redis_counted_minus_produced"] == 0
        and not figures["crashed"]
        and figures["load_generator_ok"]
        and growth is not None
        and growth <= MEMORY_TARGET_PCT
    )


def print_all(
    run: Run,
    rows: list[dict[str, Any]],
    memory: tuple[dict[str, dict[str, float | None]], dict[str, float | None]],
    figures: dict[str, Any],
    checks: dict[str, Any],
    load: dict[str, Any],
    versions: list[str],
) -> None:
    args = run.args
    print(
        f"\nsoak: {args.minutes:g} min at {args.rate:,} events/s and {args.qps:g} requests/s,"
        f" {args.users:,} users, {args.items:,} items, {os.cpu_count()} cores;"
        f" logs in {run.workdir}"
    )
    if checks["faults"]:
        print(f"faults (seconds into the steady phase): {checks['faults']}")
    report.print_minutes(rows)
    report.print_memory(memory[0], args.warm_up, memory[1])
    for part, (first, end, growth) in figures["mem_parts_mb"].items():
        print(f"  {part:<22} {first} -> {end} MiB ({growth} %)")
    print("\nthroughput, API, model")
    report.print_summary(
        [
            ("events produced (seed + steady)", f"{figures['events']:,}"),
            (
                "produced / ingested, steady",
                f"{figures['produced_per_s']:,} / {figures['ingested_per_s']:,} events/s",
            ),
            (
                "largest backlog; drain after the end",
                f"{figures['max_backlog_events']:,} events; {figures['drain_s']} s",
            ),
            ("GetRecommendations", f"{figures['api_requests']:,} requests"),
            (
                "  p50 / p95 / p99 / max ms",
                " / ".join(str(figures[f"api_{q}_ms"]) for q in ("p50", "p95", "p99", "max")),
            ),
            (
                "  error responses; empty lists",
                f"{figures['api_errors']}; {figures['empty_lists']} {load['error_samples'][:3]}",
            ),
            (
                "  503 while Redis was down (not errors); other errors then",
                f"{figures['api_503_redis_down']}; {figures['api_errors_in_redis_window']}",
            ),
            ("model versions served (API /readyz)", f"{len(versions)}: {', '.join(versions)}"),
            ("worker runs", figures["worker_runs"]),
            ("first FULL before the run", f"{figures['first_full_s']} s"),
        ]
    )
    print("\nreconciliation")
    report.print_summary(
        [
            (
                "Interactions records (repeats of a marker)",
                f"{figures['dataset_records']:,} ({figures['dataset_repeats']})",
            ),
            (
                "lost / duplicated / unexpected rows",
                f"{figures['lost']} / {figures['duplicated']} / {figures['unexpected_rows']}",
            ),
            (
                "  duplicated: in the crash window / outside / distinct markers",
                f"{figures['duplicated_in_crash_window']} /"
                f" {figures['duplicated_outside_crash_window']} /"
                f" {figures['duplicated_distinct']} (most copies of an event:"
                f" {figures['most_copies']})",
            ),
            ("Redis counters minus produced", figures["redis_counted_minus_produced"]),
            (
                "users whose history length is wrong",
                f"{figures['history_mismatches']} of {checks['histories']['users']:,}"
                f" {checks['histories']['sample']}",
            ),
            ("dead letters", figures["dead_letters"]),
            (
                "events not committed at the kill (read again)",
                (checks["faults"] or {}).get("uncommitted_at_kill"),
            ),
            (
                "rebuild equals live state (keys differing)",
                f"{figures['rebuild_equal']} ({checks['rebuild']['keys_differing']} of"
                f" {checks['rebuild']['keys_live']:,} live, {checks['rebuild']['keys_rebuilt']:,}"
                f" rebuilt; rebuild {checks['rebuild']['rebuild_s']} s,"
                f" exit {checks['rebuild']['rebuild_exit']})",
            ),
            *[("  differs", d) for d in checks["rebuild"]["first_differing"]],
            ("connector counters", checks["connector_counters"]),
            ("processes that died during the run", checks["crashed"] or "none"),
            ("exit statuses after SIGTERM", checks["exits"]),
            (
                "error lines in logs",
                {k: v[:2] for k, v in checks["log_errors"].items() if v} or "none",
            ),
            ("targets met (memory of every process)", figures["targets_met"]),
            (
                "targets met (memory of connector and API; worker per row)",
                figures["targets_met_fixed_working_set"],
            ),
        ]
    )


if __name__ == "__main__":
    main()
