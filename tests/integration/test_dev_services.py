"""`streamrec dev up|status|down`, twice in a row, leaving no process behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from connector.devservices.process import free_port, is_alive
from tests.integration.helpers import mentioning


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "dev", *args], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_up_status_down_twice(tmp_path: Path) -> None:
    dev_dir = tmp_path / "dev"
    kafka_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "STREAMREC_DEV_DIR": str(dev_dir),
        "STREAMREC_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "STREAMREC_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
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


def test_up_refuses_a_port_in_use(tmp_path: Path, endpoints) -> None:
    env = {
        **os.environ,
        "STREAMREC_DEV_DIR": str(tmp_path / "dev"),
        "STREAMREC_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "STREAMREC_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    result = _run(["up"], env)
    assert result.returncode != 0
    assert "is already in use" in result.stderr
    assert mentioning(str(tmp_path / "dev")) == []


@pytest.mark.slow
def test_demo_starts_only_what_does_not_answer(tmp_path: Path, endpoints) -> None:
    """A Redis the machine already runs is used as it is; only Kafka is started (and stopped)."""
    import redis

    dev_dir = tmp_path / "dev"
    env = {
        **os.environ,
        "STREAMREC_DEV_DIR": str(dev_dir),
        "STREAMREC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "STREAMREC_REDIS_URL": endpoints.redis_url,
        "STREAMREC_DATASET_GROUP": f"demo{os.getpid()}",
        "STREAMREC_WORKER_CACHE_DIR": str(tmp_path / "cache"),
    }
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
