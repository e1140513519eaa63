"""A local redis-server process on 127.0.0.1, from Debian's package or PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from connector.devservices import process, tools


def start(workdir: Path, port: int, timeout: float, persistent: bool) -> subprocess.Popen[bytes]:
    """Start redis-server on `port` (append-only file when `persistent`) and wait for PING."""
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"redis://127.0.0.1:{port}/0"
    return process.start_service(
        f"redis-server on {url}",
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
        lambda: answers(url),
        timeout,
    )


def answers(url: str) -> bool:
    """Whether the Redis server at `url` answers PING."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False
