"""What deployments rely on, against a real broker and Redis: `streamrec init` prepares a
dataset group and a second run changes nothing; a `streamrec connector` process answers
/healthz at once and /readyz with 200 only once its partitions are assigned and while Redis
answers (503 with the reason when Redis goes away, 200 again when it is back); a replica that
starts while a killed one still holds the group's partitions answers 503 "waiting for the
consumer group to assign partitions" from its first answer until they are assigned to it.

Redis is taken away without touching the shared server: the connector reaches Redis through
a TCP relay of this test, which is closed and reopened on the same port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

import schemas
from connector.cli.init import DEFAULT_FILTERS
from connector.devservices.process import free_port
from connector.filters.store import open_filters
from connector.readiness import Readiness
from connector.registry.registry import open_registry
from connector.settings import ConnectorSettings
from connector.trackers import open_trackers


class Relay:
    """A TCP relay from a local port to Redis that can be closed and reopened."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.port = free_port()
        self._target = target
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket and every relayed connection: Redis is gone."""
        with self._lock:
            if self._listener is not None:
                # shutdown first: on Linux, close() alone leaves a thread blocked in accept()
                # holding the socket open, and it would accept one more connection
                try:
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    return
                upstream = socket.create_connection(self._target)
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def init_env(service_env: dict[str, str], settings: ConnectorSettings) -> dict[str, str]:
    """The test's services, with a filters topic of this test's own."""
    return {
        **service_env,
        "STREAMREC_FILTERS_TOPIC": f"_streamrec.filters.{settings.dataset_group}",
    }


@pytest.fixture
def relay(settings: ConnectorSettings) -> Iterator[Relay]:
    url = urlsplit(settings.redis_url)
    relay = Relay((url.hostname or "127.0.0.1", url.port or 6379))
    relay.start()
    yield relay
    relay.stop()


def run_init(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["streamrec", "init"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def end_offsets(settings: ConnectorSettings, topics: list[str]) -> dict[str, int]:
    consumer = Consumer({**settings.kafka_config(), "group.id": "offsets-probe"})
    try:
        return {
            topic: consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
            for topic in topics
        }
    finally:
        consumer.close()


def get(port: int, path: str) -> tuple[int, dict[str, object]] | None:
    """Status and JSON body of GET `path` on the connector, or None if nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as page:
            return page.status, json.loads(page.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None


def wait_for(what: str, answer: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not answer():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_init_prepares_the_group_and_a_second_run_changes_nothing(
    settings: ConnectorSettings, init_env: dict[str, str]
) -> None:
    first = run_init(init_env)
    tracking_id = first.stdout.strip().splitlines()[-1]
    filters_topic = init_env["STREAMREC_FILTERS_TOPIC"]
    logs = [settings.schemas_topic, settings.trackers_topic, filters_topic]
    before = end_offsets(settings, logs)

    second = run_init(init_env)

    assert second.stdout.strip().splitlines()[-1] == tracking_id
    assert end_offsets(settings, logs) == before  # nothing written the second time
    assert "filter unseen: kept" in second.stderr
    topics = AdminClient(settings.kafka_config()).list_topics(timeout=30).topics
    for topic in vars(settings.topics).values():
        assert len(topics[topic].partitions) == settings.topic_partitions, topic
    registry = open_registry(settings)
    for dataset, file in schemas.DATASET_FILES.items():
        registered = registry.get(settings.dataset_group, dataset)
        assert (registered.version, registered.schema) == (1, schemas.load(file))
    trackers = open_trackers(settings).list()
    assert [(t.group, t.tracking_id) for t in trackers] == [(settings.dataset_group, tracking_id)]
    named = settings.model_copy(update={"filters_topic": filters_topic})
    found = {f.name: f.filter.text for f in open_filters(named).list()}
    assert found == DEFAULT_FILTERS


@pytest.mark.single_redis  # relays one server's port
def test_connector_is_ready_after_assignment_and_only_while_redis_answers(
    settings: ConnectorSettings,
    init_env: dict[str, str],
    relay: Relay,
    tmp_path: Path,
) -> None:
    run_init(init_env)
    port = free_port()
    env = {
        **init_env,
        "STREAMREC_REDIS_URL": f"redis://127.0.0.1:{relay.port}/0",
        "STREAMREC_CONNECTOR_WEB_PORT": str(port),
        "STREAMREC_CONNECTOR_SESSION_TIMEOUT_SECONDS": "6",
    }
    log = (tmp_path / "connector.log").open("wb")
    connector = subprocess.Popen(  # its cwd gets faust's data folder
        ["streamrec", "connector"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:

        def healthy() -> bool:
            assert connector.poll() is None, (tmp_path / "connector.log").read_text()[-2000:]
            return get(port, "/healthz") == (200, {"status": "ok"})

        wait_for("/healthz", healthy)
        wait_for("/readyz 200", lambda: (get(port, "/readyz") or (0,))[0] == 200)
        # one replica owns every partition of the three input topics
        assert get(port, "/readyz") == (200, {"status": "ready", "partitions": 3 * 2})

        relay.stop()
        answer = get(port, "/readyz")
        assert answer is not None and answer[0] == 503
        assert answer[1]["status"] == "not ready"
        assert str(answer[1]["reason"]).startswith("Redis does not answer")
        assert get(port, "/healthz") == (200, {"status": "ok"})  # alive, only not ready

        relay.start()
        wait_for("/readyz 200 again", lambda: (get(port, "/readyz") or (0,))[0] == 200, 30)
        assert connector.poll() is None
    finally:
        connector.terminate()
        connector.wait(60)
        log.close()


HELD_SECONDS = 20  # the killed member's session: how long the group keeps its partitions
WAITING = {"status": "not ready", "reason": "waiting for the consumer group to assign partitions"}


def start_connector(env: dict[str, str], port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """A `streamrec connector` process on web port `port`, its log and faust's data folder
    in `workdir` (one per process: two replicas never share a data folder)."""
    workdir.mkdir()
    log = (workdir / "connector.log").open("wb")
    return subprocess.Popen(
        ["streamrec", "connector"],
        env={**env, "STREAMREC_CONNECTOR_WEB_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )


def readiness_answers(
    connector: subprocess.Popen[bytes], port: int, workdir: Path, timeout: float = 180
) -> list[tuple[float, tuple[int, dict[str, object]]]]:
    """Every /readyz answer from the moment the web port opens until the first 200, with
    the monotonic time it came."""
    answers: list[tuple[float, tuple[int, dict[str, object]]]] = []
    deadline = time.monotonic() + timeout
    while not answers or answers[-1][1][0] != 200:
        assert connector.poll() is None, (workdir / "connector.log").read_text()[-2000:]
        assert time.monotonic() < deadline, f"no 200 from /readyz in {timeout} s: {answers}"
        answer = get(port, "/readyz")
        if answer is not None:
            answers.append((time.monotonic(), answer))
        time.sleep(0.05 if answer is None else 0.5)
    return answers


def test_a_connector_whose_partitions_are_still_held_answers_503_until_assigned(
    init_env: dict[str, str], tmp_path: Path
) -> None:
    """The real process before its assignment, made deterministic: a first replica is killed
    with SIGKILL, so it never leaves the group, and the coordinator keeps it a member (its
    partitions with it) until its session of HELD_SECONDS expires. A second replica started
    meanwhile is up and answers from its first /readyz on: 503, waiting for an assignment,
    until the first is expelled and the rebalance gives the second every partition."""
    run_init(init_env)
    held = {**init_env, "STREAMREC_CONNECTOR_SESSION_TIMEOUT_SECONDS": str(HELD_SECONDS)}
    first_port, second_port = free_port(), free_port()
    first = start_connector(held, first_port, tmp_path / "first")
    second: subprocess.Popen[bytes] | None = None
    try:
        readiness_answers(first, first_port, tmp_path / "first")
        first.kill()
        first.wait(30)
        killed = time.monotonic()
        second = start_connector(init_env, second_port, tmp_path / "second")
        answers = readiness_answers(second, second_port, tmp_path / "second")
        assert answers[0][0] - killed < HELD_SECONDS, "the second came up after the session ended"
        assert answers[0][1] == (503, WAITING)
        assert all(answer == (503, WAITING) for _, answer in answers[:-1]), answers
        assert answers[-1][1] == (200, {"status": "ready", "partitions": 3 * 2})
    finally:
        for connector in (first, second):
            if connector is not None and connector.poll() is None:
                connector.terminate()
                connector.wait(60)


def test_readiness_waits_for_assignment_and_reports_each_reason() -> None:
    """The readiness rules on their own: nothing assigned yet, during a rebalance, an idle
    replica, a Redis that fails."""
    answers: list[object] = []

    def ping() -> object:
        if answers:
            raise answers.pop()
        return True

    readiness = Readiness(["g.events", "g.items"], ping)
    check = asyncio.run
    assert check(readiness.check()).status == 503
    readiness.assigned([("g.events", 0), ("g.items", 1), ("g-__assignor-__leader", 0)])
    assert check(readiness.check()).body == {"status": "ready", "partitions": 2}
    readiness.revoked()
    verdict = check(readiness.check())
    assert verdict.status == 503 and "assign" in str(verdict.body["reason"])
    readiness.assigned([])
    verdict = check(readiness.check())
    assert verdict.status == 200 and "more replicas than partitions" in str(verdict.body)
    answers.append(ConnectionRefusedError("refused"))
    verdict = check(readiness.check())
    assert verdict.status == 503 and verdict.body["reason"] == "Redis does not answer: refused"
