"""A local redis-server process on 127.0.0.1, from Debian's package or PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from connector.devservices import process, tools
from connector.exceptions import DevServiceError, StreamrecError
from connector.redis_client import REDIS_FAILURES, open_url


def start(
    workdir: Path, port: int, timeout: float, persistent: bool, *extra: str
) -> subprocess.Popen[bytes]:
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
            *extra,
        ],
        workdir / "redis.log",
        lambda: answers(url),
        timeout,
    )


def start_cluster(workdir: Path, ports: list[int], timeout: float) -> list[subprocess.Popen[bytes]]:
    """A Redis Cluster of one master per port (no replicas), from the same redis-server
    binary: the servers started in cluster mode, the 16,384 slots spread by
    `redis-cli --cluster create`, then waited for until every node says the cluster is ok.
    Clients reach it as `redis+cluster://127.0.0.1:<first port>`."""
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node = workdir / str(port)
            servers.append(
                start(
                    node,
                    port,
                    timeout,
                    False,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node / "nodes.conf"),
                    # The bus defaults to port + 10,000, which may be taken or out of range.
                    "--cluster-port",
                    str(process.free_port()),
                )
            )
        subprocess.run(
            [
                tools.require("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        ready = lambda: all(_cluster_ok(port) for port in ports)  # noqa: E731
        if not process.wait_until(ready, timeout, lambda: True):
            raise DevServiceError(f"the Redis Cluster on ports {ports} did not become ok")
    except (subprocess.SubprocessError, DevServiceError) as exc:
        for server in servers:
            process.stop(server.pid)
        raise DevServiceError(f"could not create a Redis Cluster in {workdir}: {exc}") from exc
    return servers


def _cluster_ok(port: int) -> bool:
    try:
        info = redis.Redis(port=port, socket_timeout=1).cluster("INFO")
    except redis.RedisError:
        return False
    return isinstance(info, dict) and info.get("cluster_state") == "ok"


# A client that cannot reach Redis, or a cluster client that cannot be made.
NO_ANSWER: tuple[type[Exception], ...] = (*REDIS_FAILURES, StreamrecError)


def answers(url: str) -> bool:
    """Whether the Redis server (or cluster) at `url` answers PING."""
    try:
        return bool(open_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except NO_ANSWER:
        return False
