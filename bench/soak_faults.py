"""The soak benchmark's fault phase: Redis stopped for a while and the connector SIGKILLed once,
while the events flow; and the rebuild check at the end.

Redis is a redis-server of the soak's own, started with its append-only file on, so it
keeps its data across the stop: SIGTERM makes it write and fsync the file before it exits,
and it is started again on the same port and folder, where it loads the file. (The soak
does not exercise the lost-Redis path: the promise under test here is that an outage
loses, doubles and blocks nothing, not that a rebuild restores an empty Redis.) The
connector is killed with SIGKILL and started again at once with the same settings and web
port.

The connector's crash window is measured in Interactions offsets: from the end offsets of
the dataset when the connector is killed to its end offsets once the restarted connector
has committed every events-topic offset that existed at the kill. Only rows appended in
that window can be second copies that at-least-once delivery allows (docs/guarantees.md);
any other extra copy is a defect.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, TopicPartition

from connector.devservices import kafka as local_kafka
from connector.devservices import process
from connector.devservices import redis as local_redis
from connector.devservices.settings import DevSettings
from connector.settings import ConnectorSettings

REDIS_START_TIMEOUT = 180.0  # loading the append-only file takes a while
CATCH_UP_TIMEOUT = 600.0
# Keys `rebuild` does not own: the worker's model versions, the API's served lists (and a
# subject's served ids), the precomputed lists and the active set (recomputed, not restored:
# exploration is random). The same as tests/integration/test_rebuild_equals_ingest.py's.
NOT_REBUILT = (":recs", ":active", ":model:", ":served")
KEPT_FOR_REBUILD = (":model:", ":served")  # not deleted before the rebuild: it needs a model


class OwnRedis:
    """A redis-server with its append-only file, stopped and started again on one port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, process.free_port()
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.child = local_redis.start(self.workdir, self.port, REDIS_START_TIMEOUT, True)

    def stop(self) -> None:
        """SIGTERM: Redis writes and fsyncs its append-only file, then exits."""
        if self.child is not None:
            process.stop(self.child.pid, grace=120)
            self.child = None


@contextlib.contextmanager
def services_with_own_redis() -> Iterator[tuple[str, OwnRedis]]:
    """(kafka bootstrap, Redis the soak may stop): a local broker and a persistent
    redis-server, both started here. A configured STREAMREC_REDIS_URL is not used: the
    fault phase stops Redis, which must be one nobody else relies on."""
    if os.environ.get("STREAMREC_REDIS_URL"):
        raise SystemExit(
            "the fault phase stops Redis: unset STREAMREC_REDIS_URL (the soak starts its own)"
            " or run with --no-faults"
        )
    dev = DevSettings()
    with tempfile.TemporaryDirectory(prefix="streamrec-bench-") as workdir:
        configured = os.environ.get("STREAMREC_KAFKA_BOOTSTRAP")
        broker = None
        if configured:
            kafka = configured
        else:
            port = process.free_port()
            print(f"starting a local Kafka broker and redis-server in {workdir}", flush=True)
            broker = local_kafka.start(
                Path(workdir) / "kafka", port, "1g", dev.dev_start_timeout, dev.dev_dir
            )
            kafka = f"127.0.0.1:{port}"
        server = OwnRedis(Path(workdir) / "redis")
        try:
            server.start()
            yield kafka, server
        finally:
            server.stop()
            if broker is not None:
                process.stop(broker.pid)


def end_offsets(settings: ConnectorSettings, topic: str) -> dict[int, int]:
    """High watermark of each partition of `topic`."""
    consumer = Consumer({**settings.kafka_config(), "group.id": "soak-reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1] for p in partitions
        }
    finally:
        consumer.close()


def committed(settings: ConnectorSettings, partitions: list[int]) -> dict[int, int]:
    """The connector's consumer group's committed offset of each events partition (-1001,
    librdkafka's "none", before its first commit)."""
    topic = settings.topics.events
    consumer = Consumer({**settings.kafka_config(), "group.id": settings.consumer_group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def committed_up_to(settings: ConnectorSettings, ends: dict[int, int]) -> bool:
    """Whether the connector's consumer group committed each events partition to `ends`."""
    return all(offset >= ends[p] for p, offset in committed(settings, list(ends)).items())


@dataclass
class FaultLog:
    """When each fault happened (Unix time) and the Interactions offsets around it."""

    redis_stopped: float | None = None
    redis_started: float | None = None
    redis_answered: float | None = None
    connector_killed: float | None = None
    connector_restarted: float | None = None
    connector_caught_up: float | None = None
    # Interactions end offsets per partition at the kill and once caught up again
    crash_window: dict[str, dict[int, int]] = field(default_factory=dict)
    # events produced but not committed by the connector when it was killed: what the
    # restarted connector reads again
    uncommitted_at_kill: int | None = None
    notes: list[str] = field(default_factory=list)

    def in_crash_window(self, partition: int, offset: int) -> bool:
        low = self.crash_window.get("from", {})
        high = self.crash_window.get("to", {})
        if partition not in low:
            return False
        return low[partition] <= offset < high.get(partition, 1 << 62)

    def redis_window(self, grace: float) -> tuple[float, float] | None:
        """(from, to) Unix times in which the API may answer 503: Redis down, plus `grace`."""
        if self.redis_stopped is None:
            return None
        back = self.redis_answered or self.redis_started or time.time()
        return self.redis_stopped, back + grace

    def relative(self, start: float) -> dict[str, Any]:
        """The times as seconds since `start` (the steady phase's), for the report."""
        times = {
            name: round(getattr(self, name) - start, 1)
            for name in (
                "redis_stopped",
                "redis_started",
                "redis_answered",
                "connector_killed",
                "connector_restarted",
                "connector_caught_up",
            )
            if getattr(self, name) is not None
        }
        return {
            **times,
            "uncommitted_at_kill": self.uncommitted_at_kill,
            "crash_window_offsets": self.crash_window,
            "notes": self.notes,
        }


class Faults(threading.Thread):
    """Runs the fault phase during the steady phase, from `start_at` (Unix time): Redis
    stopped at `redis_at` seconds for `redis_seconds`, the connector SIGKILLed at `kill_at`
    seconds by `connector`'s first function and restarted by its second; `alive` tells
    whether the (restarted) connector runs."""

    def __init__(
        self,
        settings: ConnectorSettings,
        server: OwnRedis,
        connector: tuple[Callable[[], None], Callable[[], None]],
        alive: Callable[[], bool],
        plan: tuple[float, float, float, float],
    ) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.settings, self.server = settings, server
        (self.kill, self.restart), self.alive = connector, alive
        self.start_at, self.redis_at, self.redis_seconds, self.kill_at = plan
        self.log = FaultLog()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            steps = [(self.redis_at, self._redis), (self.kill_at, self._connector)]
            for at, step in sorted(steps, key=lambda s: s[0]):
                time.sleep(max(0.0, self.start_at + at - time.time()))
                step()
        except BaseException as exc:  # reported by the soak, not lost in a thread
            self.error = exc
            self.log.notes.append(f"fault phase failed: {exc!r}")

    def _redis(self) -> None:
        print(f"  fault: stopping Redis for {self.redis_seconds:g} s", flush=True)
        self.log.redis_stopped = time.time()
        self.server.stop()
        time.sleep(max(0.0, self.log.redis_stopped + self.redis_seconds - time.time()))
        self.log.redis_started = time.time()
        self.server.start()  # returns once it answers PING (the file loaded)
        self.log.redis_answered = time.time()
        client = redis.Redis.from_url(self.server.url)
        keys = client.dbsize()
        print(
            f"  fault: Redis back after {self.log.redis_answered - self.log.redis_stopped:.1f} s"
            f" with {keys:,} keys",
            flush=True,
        )

    def _connector(self) -> None:
        interactions = self.settings.topics.interactions
        events_end = end_offsets(self.settings, self.settings.topics.events)
        self.kill()
        self.log.connector_killed = time.time()
        done = committed(self.settings, list(events_end))
        self.log.uncommitted_at_kill = sum(
            end - max(done.get(p, 0), 0) for p, end in events_end.items()
        )
        self.log.crash_window["from"] = end_offsets(self.settings, interactions)
        print("  fault: connector SIGKILLed; restarting it", flush=True)
        self.restart()
        self.log.connector_restarted = time.time()
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while not committed_up_to(self.settings, events_end):
            if time.monotonic() > deadline or not self.alive():
                self.log.notes.append("the restarted connector did not catch up")
                break
            time.sleep(0.5)
        else:
            self.log.connector_caught_up = time.time()
        self.log.crash_window["to"] = end_offsets(self.settings, interactions)
        print(
            "  fault: restarted connector committed what existed at the kill after"
            f" {time.time() - self.log.connector_killed:.1f} s",
            flush=True,
        )


def redis_state(client: redis.Redis, group: str, skip: tuple[str, ...]) -> dict[str, Any]:
    """Every key of the group with its value (sets and sorted sets with scores), but not the
    keys that contain any of `skip`; TTLs aside."""
    names = [
        raw.decode()
        for raw in client.scan_iter(match=f"streamrec:{group}:*", count=2000)
        if not any(part in raw.decode() for part in skip)
    ]
    state: dict[str, Any] = {}
    for start in range(0, len(names), 2000):
        chunk = names[start : start + 2000]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.type(name)
        kinds = [k.decode() for k in pipe.execute()]
        pipe = client.pipeline(transaction=False)
        for name, kind in zip(chunk, kinds, strict=True):
            if kind == "zset":
                pipe.zrange(name, 0, -1, withscores=True)
            elif kind == "hash":
                pipe.hgetall(name)
            elif kind == "set":
                pipe.smembers(name)
            elif kind == "list":
                pipe.lrange(name, 0, -1)
            else:
                pipe.get(name)
        for name, kind, value in zip(chunk, kinds, pipe.execute(), strict=True):
            if kind != "none":  # expired between the scan and the read
                state[name] = value
    return state


def rebuild_check(
    client: redis.Redis, group: str, env: dict[str, str], workdir: Path
) -> dict[str, Any]:
    """The live state, then every key of the group deleted but model versions and served
    lists, `streamrec rebuild` run, and the state compared key by key (NOT_REBUILT aside)."""
    live = redis_state(client, group, NOT_REBUILT)
    doomed = [
        raw
        for raw in client.scan_iter(match=f"streamrec:{group}:*", count=2000)
        if not any(part in raw.decode() for part in KEPT_FOR_REBUILD)
    ]
    for start in range(0, len(doomed), 2000):
        client.delete(*doomed[start : start + 2000])
    started = time.perf_counter()
    log = workdir / "rebuild.log"
    with log.open("wb") as out:
        status = subprocess.run(
            ["streamrec", "rebuild"], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = round(time.perf_counter() - started, 1)
    rebuilt = redis_state(client, group, NOT_REBUILT)
    differing = sorted(k for k in live.keys() | rebuilt.keys() if live.get(k) != rebuilt.get(k))
    return {
        "rebuild_equal": status == 0 and not differing,
        "rebuild_exit": status,
        "rebuild_s": seconds,
        "keys_live": len(live),
        "keys_rebuilt": len(rebuilt),
        "keys_differing": len(differing),
        "only_live": sum(1 for k in differing if k not in rebuilt),
        "only_rebuilt": sum(1 for k in differing if k not in live),
        "first_differing": [_difference(k, live.get(k), rebuilt.get(k)) for k in differing[:5]],
        "deleted_keys": len(doomed),
    }


def _difference(key: str, live: Any, rebuilt: Any) -> dict[str, Any]:
    """What differs in one key: its value on each side, or the members, fields or (member,
    score) pairs only one side holds (the first three of each)."""
    if isinstance(live, dict) and isinstance(rebuilt, dict):
        live, rebuilt = set(live.items()), set(rebuilt.items())
    elif isinstance(live, list) and isinstance(rebuilt, list):
        live, rebuilt = set(live), set(rebuilt)
    if isinstance(live, set) and isinstance(rebuilt, set):
        return {
            "key": key,
            "only_live": _short(sorted(live - rebuilt, key=repr)[:3]),
            "only_rebuilt": _short(sorted(rebuilt - live, key=repr)[:3]),
            "sizes": [len(live), len(rebuilt)],
        }
    return {"key": key, "live": _short(live), "rebuilt": _short(rebuilt)}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 400 else text[:400] + "..."
