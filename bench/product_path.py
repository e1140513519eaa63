"""streamrec's own commands against one dataset group, run the way a new user runs them.

bench/quality.py and tests/integration/test_product_answers.py measure and check our model
through this path rather than in-process: `streamrec init`, a `streamrec connector` process,
`streamrec import items` / `interactions` of CSV files, `streamrec train --mode full`, then
`streamrec api` processes asked `POST /recommendations` over HTTP. Every command is a child
process of this checkout's code (PYTHONPATH is this repository, so a worktree runs its own
code, not the installed package's), with the environment the caller gives plus the group.

Readiness: the import commands return once their rows are published; `wait_caught_up` waits
until the connector's consumer group has committed every input record (`streamrec status`'s
lag, 0) and the Interactions dataset topic holds at least the rows that passed the checks.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.api_calls import JSON, call
from connector.devservices.process import free_port
from connector.settings import ConnectorSettings
from connector.topic_state import connector_lag, topic_records

ROOT = Path(__file__).resolve().parents[1]
# `streamrec` itself: the console script's entry point, imported from this checkout.
STREAMREC = [sys.executable, "-c", "from connector.cli import main; main()"]
EXPLORATION = "Exploration"  # the reason GetRecommendations gives an explored item
_PUBLISHED = re.compile(r"published (\d+) rows to \S+: (\d+) pass the checks")


class ProductPathError(RuntimeError):
    """A command of the product path failed; the message holds its output's tail."""


@dataclass(frozen=True)
class Imported:
    """What `streamrec import` reported: rows published and rows that passed the checks."""

    rows: int
    accepted: int
    seconds: float


@dataclass(frozen=True)
class Answer:
    """One GetRecommendations answer: item ids best first, their scores, and which of them
    were placed by exploration."""

    items: list[str]
    scores: list[float]
    explored: list[bool]


def clean_environment(keep: Iterable[str] = ()) -> dict[str, str]:
    """os.environ without STREAMREC_* settings (so every command runs on its defaults), but
    for the names in `keep`."""
    kept = set(keep)
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("STREAMREC_") or name in kept
    }


class Product:
    """The commands of one dataset group: `settings` says where Kafka and Redis are and which
    group; `env` is the environment every command starts from (STREAMREC_* of the services);
    `workdir` receives the CSV files and each process's log."""

    def __init__(self, settings: ConnectorSettings, env: Mapping[str, str], workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.env = {
            **env,
            "PYTHONPATH": path,
            "STREAMREC_DATASET_GROUP": settings.dataset_group,
            "STREAMREC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "STREAMREC_REDIS_URL": settings.redis_url,
        }

    # --- commands ------------------------------------------------------------------------

    def run(
        self, *args: str, timeout: float = 3600, extra_env: Mapping[str, str] | None = None
    ) -> str:
        """`streamrec ARGS` to its end; its stdout. Raises ProductPathError when it fails."""
        log = self.workdir / f"{_slug(args)}.log"
        with log.open("ab") as errors:
            done = subprocess.run(
                [*STREAMREC, *args],
                cwd=ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=subprocess.PIPE,
                stderr=errors,
                timeout=timeout,
                check=False,
            )
        out = done.stdout.decode(errors="replace")
        if done.returncode != 0:
            raise ProductPathError(
                f"streamrec {' '.join(args)} exited with {done.returncode}:\n"
                f"{out[-1000:]}{_tail(log)}"
            )
        return out

    @contextlib.contextmanager
    def process(self, name: str, *args: str, **extra_env: str) -> Iterator[subprocess.Popen[bytes]]:
        """`streamrec ARGS` running in the background (its output in `name`.log), stopped
        with SIGTERM on exit (SIGKILL after 60 s)."""
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            child = subprocess.Popen(
                [*STREAMREC, *args],
                cwd=ROOT,
                env={**self.env, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            yield child
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(30)

    def alive(self, child: subprocess.Popen[bytes], name: str) -> None:
        """Raises ProductPathError with the log's tail when `child` has exited."""
        if child.poll() is not None:
            raise ProductPathError(
                f"streamrec {name} exited with {child.returncode}:\n"
                f"{_tail(self.workdir / f'{name}.log')}"
            )

    def init(self) -> str:
        """`streamrec init`: topics, schemas, tracker, default filters; the tracking id."""
        return self.run("init").strip().splitlines()[-1]

    @contextlib.contextmanager
    def connector(self, **extra_env: str) -> Iterator[subprocess.Popen[bytes]]:
        """A `streamrec connector` process (its /metrics on a free port)."""
        port = str(free_port())
        with self.process(
            "connector", "connector", STREAMREC_CONNECTOR_WEB_PORT=port, **extra_env
        ) as child:
            yield child

    def import_rows(
        self, dataset: str, fields: Sequence[str], rows: Iterable[Mapping[str, object]]
    ) -> Imported:
        """Write `rows` (only `fields`, empty cells for None) as `dataset`.csv and run
        `streamrec import DATASET FILE`."""
        path = self.workdir / f"{dataset}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(fields)
            for row in rows:
                writer.writerow(["" if row.get(f) is None else row.get(f) for f in fields])
        started = time.monotonic()
        out = self.run("import", dataset, str(path))
        found = _PUBLISHED.search(out)
        if found is None:
            raise ProductPathError(f"streamrec import {dataset}: unexpected output {out!r}")
        return Imported(int(found[1]), int(found[2]), time.monotonic() - started)

    def wait_caught_up(
        self,
        child: subprocess.Popen[bytes],
        interactions: int,
        timeout: float = 3600,
        progress: Callable[[str], None] | None = None,
    ) -> float:
        """Wait until the connector has committed every input record and the Interactions
        dataset topic holds at least `interactions` records; the seconds waited."""
        started = time.monotonic()
        said = started
        while True:
            self.alive(child, "connector")
            lag = connector_lag(self.settings)
            stored = topic_records(self.settings, self.settings.topics.interactions)
            if lag == 0 and stored >= interactions:
                return time.monotonic() - started
            now = time.monotonic()
            if now - started > timeout:
                raise ProductPathError(
                    f"the connector did not catch up in {timeout:.0f} s: lag {lag}, "
                    f"{stored} of {interactions} interactions stored"
                )
            if progress is not None and now - said >= 10:
                progress(f"  connector: lag {lag:,}, {stored:,} of {interactions:,} stored")
                said = now
            time.sleep(1.0)

    def train(self, **extra_env: str) -> tuple[str, float]:
        """`streamrec train --mode full`; (the published version, seconds)."""
        started = time.monotonic()
        out = self.run("train", "--mode", "full", extra_env=extra_env)
        found = re.search(r"published model version (\S+)", out)
        if found is None:
            raise ProductPathError(f"streamrec train: unexpected output {out!r}")
        return found[1], time.monotonic() - started

    @contextlib.contextmanager
    def api(self, name: str, version: str | None = None, **extra_env: str) -> Iterator[int]:
        """A `streamrec api` process on a free port of 127.0.0.1, ready (serving `version`
        when given); its port."""
        port = free_port()
        env = {"STREAMREC_API_PORT": str(port), "STREAMREC_API_HOST": "127.0.0.1", **extra_env}
        with self.process(name, "api", **env) as child:
            deadline = time.monotonic() + 300
            while True:
                self.alive(child, name)
                status, body = call(port, "GET", "/readyz")
                if status == 200 and (version is None or body.get("modelVersion") == version):
                    break
                if time.monotonic() > deadline:
                    raise ProductPathError(f"streamrec api ({name}) was not ready in 300 s")
                time.sleep(0.3)
            yield port


# --- HTTP ----------------------------------------------------------------------------------


def recommendations(
    port: int,
    users: Sequence[str],
    count: int = 10,
    clients: int = 2,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Answer]:
    """POST /recommendations {"userId", "numResults": count} for every user, over `clients`
    kept-alive connections at once; the answers by user. Raises ProductPathError on any
    status but 200."""
    answers: dict[str, Answer] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def work(chunk: Sequence[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for user in chunk:
                body = orjson.dumps({"userId": user, "numResults": count})
                connection.request("POST", "/recommendations", body=body, headers=JSON)
                response = connection.getresponse()
                raw = response.read()
                if response.status != 200:
                    with lock:
                        failures.append(f"user {user}: {response.status} {raw[:300]!r}")
                    return
                listed = orjson.loads(raw)["itemList"]
                answer = Answer(
                    [entry["itemId"] for entry in listed],
                    [float(entry["score"]) for entry in listed],
                    [EXPLORATION in entry.get("reason", ()) for entry in listed],
                )
                with lock:
                    answers[user] = answer
                    if progress is not None:
                        progress(len(answers))
        except Exception as exc:  # noqa: BLE001 - reported with the rest below
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=(users[n::clients],), daemon=True)
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise ProductPathError(f"GetRecommendations failed: {failures[0]}")
    return answers


def answered_from_lists(port: int) -> int:
    """GetRecommendations answered so far from a precomputed list, from the API's own
    counter (streamrec_api_recommendations_total{source="precomputed"})."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        status, text = response.status, response.read().decode()
    finally:
        connection.close()
    if status != 200:
        raise ProductPathError(f"GET /metrics answered {status}")
    pattern = r'^streamrec_api_recommendations_total\{source="precomputed"\} ([0-9.e+]+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return int(float(found[1])) if found else 0


def _slug(args: Sequence[str]) -> str:
    """A log file name from a command line: its first two words that are not options."""
    words = [a for a in args if not a.startswith("-")][:2]
    return "-".join(re.sub(r"[^a-z0-9]+", "_", w.lower()) for w in words)[:40] or "command"


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""
