"""`LocalServices.up()` starts only what does not answer and never stops what answers.

Why: `streamrec dev up` with Redis down used to stop everything first, so a healthy broker
was gone for 8 s (producers refused, a rebalance). Processes are faked here so each case is
decided in milliseconds; tests/integration/test_dev_services.py runs the real ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connector.devservices import local
from connector.devservices.local import LocalServices, ServiceState
from connector.devservices.settings import DevSettings
from connector.exceptions import DevServiceError
from connector.settings import CommonSettings

KAFKA, REDIS = 19092, 16379


@dataclass
class Machine:
    """Fake processes: which PIDs run, which answer, and what was started and stopped."""

    running: set[int] = field(default_factory=set)
    answering: set[int] = field(default_factory=set)
    elsewhere: set[str] = field(default_factory=set)  # answering, not started by dev up
    listening: set[int] = field(default_factory=set)  # ports taken by something else
    started: list[str] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    next_pid: int = 1000

    def spawn(self, name: str) -> Any:
        self.next_pid += 1
        self.running.add(self.next_pid)
        self.answering.add(self.next_pid)
        self.started.append(name)
        return type("Child", (), {"pid": self.next_pid})()

    def stop(self, pid: int, grace: float = 30.0) -> None:
        self.stopped.append(pid)
        self.running.discard(pid)
        self.answering.discard(pid)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    fake = Machine()
    monkeypatch.setattr(ServiceState, "running", property(lambda s: s.pid in fake.running))
    monkeypatch.setattr(ServiceState, "answering", property(lambda s: s.pid in fake.answering))
    monkeypatch.setattr(local.kafka, "start", lambda *a, **k: fake.spawn("kafka"))
    monkeypatch.setattr(local.redis, "start", lambda *a, **k: fake.spawn("redis"))
    monkeypatch.setattr(local.kafka, "answers", lambda _: "kafka" in fake.elsewhere)
    monkeypatch.setattr(local.redis, "answers", lambda _: "redis" in fake.elsewhere)
    monkeypatch.setattr(local.process, "stop", fake.stop)
    monkeypatch.setattr(local.process, "port_in_use", lambda port: port in fake.listening)
    return fake


def services(tmp_path: Path, recorded: list[ServiceState]) -> LocalServices:
    dev = DevSettings(dev_dir=tmp_path, dev_start_timeout=0.5)
    common = CommonSettings(
        kafka_bootstrap=f"127.0.0.1:{KAFKA}", redis_url=f"redis://127.0.0.1:{REDIS}/0"
    )
    if recorded:
        (tmp_path / "services.json").write_text(
            json.dumps([{"name": s.name, "pid": s.pid, "address": s.address} for s in recorded])
        )
    return LocalServices(dev, common)


BROKER = ServiceState("kafka", 11, f"127.0.0.1:{KAFKA}")
CACHE = ServiceState("redis", 22, f"redis://127.0.0.1:{REDIS}/0")


def test_redis_down_restarts_redis_alone_and_keeps_the_answering_broker(
    tmp_path: Path, machine: Machine
) -> None:
    machine.running |= {BROKER.pid}
    machine.answering |= {BROKER.pid}  # Redis (pid 22) died
    services(tmp_path, [BROKER, CACHE]).up()
    assert machine.stopped == [] and machine.started == ["redis"]
    states = services(tmp_path, []).status()
    assert [(s.name, s.pid) for s in states] == [("kafka", 11), ("redis", machine.next_pid)]


def test_everything_answering_starts_and_stops_nothing(tmp_path: Path, machine: Machine) -> None:
    machine.running |= {BROKER.pid, CACHE.pid}
    machine.answering |= {BROKER.pid, CACHE.pid}
    services(tmp_path, [BROKER, CACHE]).up()
    assert (machine.started, machine.stopped) == ([], [])


def test_a_service_answering_that_dev_up_did_not_start_is_used_and_left_alone(
    tmp_path: Path, machine: Machine
) -> None:
    machine.elsewhere.add("kafka")  # a broker of another folder, on the configured port
    machine.listening.add(KAFKA)
    local_services = services(tmp_path, [])
    local_services.up()
    assert (machine.started, machine.stopped) == (["redis"], [])
    assert [s.name for s in local_services.status()] == ["redis"]  # `down` will not stop Kafka


def test_a_recorded_process_that_never_answers_is_replaced(
    tmp_path: Path, machine: Machine
) -> None:
    machine.running |= {BROKER.pid, CACHE.pid}
    machine.answering |= {BROKER.pid}  # Redis runs but does not answer
    services(tmp_path, [BROKER, CACHE]).up()
    assert (machine.stopped, machine.started) == ([CACHE.pid], ["redis"])


def test_the_demo_stops_only_what_it_started(tmp_path: Path, machine: Machine) -> None:
    """The demo starts the missing Kafka; at its end it must not stop the Redis that an
    earlier `dev up` of the same folder started and that answered all along."""
    machine.running |= {CACHE.pid}
    machine.answering |= {CACHE.pid}
    dev = DevSettings(dev_dir=tmp_path, dev_start_timeout=0.5)
    common = CommonSettings(
        kafka_bootstrap=f"127.0.0.1:{KAFKA}", redis_url=f"redis://127.0.0.1:{REDIS}/0"
    )
    services(tmp_path, [CACHE])  # recorded by that earlier `dev up`
    demo = LocalServices(dev, common, scope=frozenset({"kafka"}))
    demo.up()
    assert [state.name for state in demo.down()] == ["kafka"]
    assert machine.stopped == [machine.next_pid] and CACHE.pid in machine.running
    assert [(s.name, s.pid) for s in demo.status()] == [("redis", CACHE.pid)]


def test_a_port_held_by_something_else_is_refused(tmp_path: Path, machine: Machine) -> None:
    machine.listening.add(REDIS)  # not a Redis: it does not answer PING
    with pytest.raises(DevServiceError, match="port 16379 is already in use"):
        services(tmp_path, []).up()
    assert machine.started == []
