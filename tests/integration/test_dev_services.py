"""`streamrec dev up|status|down`, twice in a row, leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from connector.devservices import kafka as local_kafka
from connector.devservices.process import free_port, is_alive
from tests.integration.helpers import mentioning

pytestmark = pytest.mark.single_redis  # starts its own services


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "dev", *args], env=env, capture_output=True, text=True, timeout=600
    )


def _env(dev_dir: Path, kafka: str, redis_url: str, **more: str) -> dict[str, str]:
    """This process's environment with local services in `dev_dir` at these addresses."""
    return {
        **os.environ,
        "STREAMREC_DEV_DIR": str(dev_dir),
        "STREAMREC_KAFKA_BOOTSTRAP": kafka,
        "STREAMREC_REDIS_URL": redis_url,
        **more,
    }


@pytest.mark.slow
def test_up_status_down_twice(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    kafka_port, redis_port = free_port(), free_port()
    env = _env(dev_dir, f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
    for _ in range(2):
        up = _run(["up"], env)
        assert up.returncode == 0, up.stderr
        assert f"export STREAMREC_KAFKA_BOOTSTRAP=127.0.0.1:{kafka_port}" in up.stdout
        pids = [state["pid"] for state in json.loads((dev_dir / "services.json").read_text())]
        status = _run(["status"], env)
        assert status.returncode == 0 and status.stdout.count("answering") == 2, status.stdout
        down = _run(["down"], env)
        assert down.returncode == 0 and "stopped kafka" in down.stdout
        assert not any(is_alive(pid) for pid in pids)
        assert mentioning(str(dev_dir)) == []
        stopped = _run(["status"], env)
        assert stopped.returncode == 1 and "no local services" in stopped.stdout


def test_up_refuses_a_port_held_by_something_that_is_not_the_service(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:  # accepts, never answers PING
        port = squatter.getsockname()[1]
        env = _env(tmp_path / "dev", f"127.0.0.1:{free_port()}", f"redis://127.0.0.1:{port}/0")
        result = _run(["up"], env)
    assert result.returncode != 0
    assert f"port {port} is already in use" in result.stderr
    assert mentioning(str(tmp_path / "dev")) == []


def test_up_uses_a_service_that_answers_and_starts_only_the_other(
    tmp_path: Path, endpoints
) -> None:
    """The session's broker answers on the configured address: `dev up` starts Redis alone,
    and `dev down` stops only that Redis."""
    dev_dir = tmp_path / "dev"
    redis_port = free_port()
    env = _env(dev_dir, endpoints.kafka_bootstrap, f"redis://127.0.0.1:{redis_port}/0")
    up = _run(["up"], env)
    assert up.returncode == 0, up.stderr
    assert "kafka  answers at the configured address, not started here" in up.stdout
    [state] = json.loads((dev_dir / "services.json").read_text())
    assert (state["name"], state["address"]) == ("redis", f"redis://127.0.0.1:{redis_port}/0")
    down = _run(["down"], env)
    assert down.stdout.strip() == f"stopped redis (pid {state['pid']})"
    assert local_kafka.answers(endpoints.kafka_bootstrap)
    assert mentioning(str(dev_dir)) == []


@pytest.mark.slow
def test_up_with_redis_down_restarts_redis_and_never_stops_the_broker(tmp_path: Path) -> None:
    """Issue 17: `dev up` with only Redis down used to stop the healthy broker first."""
    dev_dir = tmp_path / "dev"
    kafka_port, redis_port = free_port(), free_port()
    env = _env(dev_dir, f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
    try:
        assert _run(["up"], env).returncode == 0
        pids = {s["name"]: s["pid"] for s in json.loads((dev_dir / "services.json").read_text())}
        os.killpg(pids["redis"], signal.SIGKILL)
        while is_alive(pids["redis"]):
            time.sleep(0.1)
        up = _run(["up"], env)
        assert up.returncode == 0, up.stderr
        after = {s["name"]: s["pid"] for s in json.loads((dev_dir / "services.json").read_text())}
        assert after["kafka"] == pids["kafka"] and is_alive(pids["kafka"])
        assert after["redis"] != pids["redis"] and is_alive(after["redis"])
        assert "already answering" in up.stdout and "started" in up.stdout
        status = _run(["status"], env)
        assert status.returncode == 0 and status.stdout.count("answering") == 2, status.stdout
    finally:
        _run(["down"], env)
    assert mentioning(str(dev_dir)) == []


@pytest.mark.slow
def test_demo_starts_only_what_does_not_answer(tmp_path: Path, endpoints) -> None:
    """A Redis the machine already runs is used as it is; only Kafka is started (and stopped)."""
    import redis

    dev_dir = tmp_path / "dev"
    env = _env(
        dev_dir,
        f"127.0.0.1:{free_port()}",
        endpoints.redis_url,
        STREAMREC_DATASET_GROUP=f"demo{os.getpid()}",
        STREAMREC_WORKER_CACHE_DIR=str(tmp_path / "cache"),
    )
    tiny = ["--max-interactions", "3000", "--replay-events", "100", "--replay-seconds", "3"]
    tiny += ["--epochs", "1", "--users", "1", "--api-port", "0"]
    result = subprocess.run(
        ["streamrec", "demo", *tiny], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "valid ->" in result.stdout and "stopped the local Kafka" in result.stdout
    assert redis.Redis.from_url(endpoints.redis_url).ping()
    assert not (dev_dir / "redis").exists()
    assert mentioning(str(dev_dir)) == []
