"""A local redis-server process on 127.0.0.1, from Debian's package or PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from connector.devservices import process, tools
from connector.exceptions import DevServiceError


def start(workdir: Path, port: int, timeout: float, persistent: bool) -> subprocess.Popen[bytes]:
    """Start redis-server on `port` (append-only file when `persistent`) and wait for PING."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = process.spawn(
        [
            tools.require("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--appendonly",
            "yes" if persistent else "no",
            "--save",
            "",
            "--daemonize",
            "no",
        ],
        workdir / "redis.log",
    )
    url = f"redis://127.0.0.1:{port}/0"
    if not process.wait_until(lambda: answers(url), timeout, lambda: server.poll() is None):
        process.stop(server.pid)
        raise DevServiceError(f"redis-server did not start on {url}; see {workdir / 'redis.log'}")
    return server


def answers(url: str) -> bool:
    """Whether the Redis server at `url` answers PING."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False
