"""Kafka and Redis for a benchmark: the configured ones, or local ones started here."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from connector.devservices import kafka as local_kafka
from connector.devservices import process
from connector.devservices import redis as local_redis
from connector.devservices.settings import DevSettings


@contextlib.contextmanager
def services() -> Iterator[tuple[str, str]]:
    """(kafka bootstrap, redis url): from STREAMREC_* when both are set, else started here."""
    kafka, redis_url = (
        os.environ.get("STREAMREC_KAFKA_BOOTSTRAP"),
        os.environ.get("STREAMREC_REDIS_URL"),
    )
    if kafka and redis_url:
        yield kafka, redis_url
        return
    dev = DevSettings()
    with tempfile.TemporaryDirectory(prefix="streamrec-bench-") as workdir:
        kafka_port, redis_port = process.free_port(), process.free_port()
        print(f"starting a local Kafka broker and redis-server in {workdir}", flush=True)
        broker = local_kafka.start(
            Path(workdir) / "kafka", kafka_port, "1g", dev.dev_start_timeout, dev.dev_dir
        )
        server = local_redis.start(Path(workdir) / "redis", redis_port, 60, persistent=False)
        try:
            yield f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
        finally:
            process.stop(server.pid)
            process.stop(broker.pid)


@contextlib.contextmanager
def redis_service() -> Iterator[str]:
    """A redis url for a benchmark that needs no Kafka: STREAMREC_REDIS_URL when set, else a
    redis-server started here (no persistence) and stopped on exit."""
    configured = os.environ.get("STREAMREC_REDIS_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="streamrec-bench-") as workdir:
        port = process.free_port()
        print(f"starting a local redis-server in {workdir}", flush=True)
        server = local_redis.start(Path(workdir) / "redis", port, 60, persistent=False)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.stop(server.pid)
