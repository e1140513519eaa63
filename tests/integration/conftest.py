"""A real Kafka broker (KRaft) and a real Redis server for every integration test.

Why three sources: CI and developer machines here have no Docker, users' machines often do,
and a shared cluster is sometimes at hand. The fixture takes, in order: addresses given in
STREAMREC_KAFKA_BOOTSTRAP / STREAMREC_REDIS_URL; testcontainers when a Docker engine answers;
otherwise a broker and redis-server started here from the JDK and PATH (connector.devservices).
Each test gets its own dataset group, which namespaces its topics, schemas topic and Redis keys.

Every test that uses the test's Redis (through `settings`, `redis_db` or `service_env`) runs
twice: on the single server and on a 3-master Redis Cluster started here from the same
redis-server binary (or STREAMREC_TEST_REDIS_CLUSTER_URL), unless marked `single_redis`
(it needs no Redis, or starts its own). STREAMREC_TEST_REDIS=single or =cluster runs one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.devservices import kafka as local_kafka
from connector.devservices import process
from connector.devservices import redis as local_redis
from connector.devservices.settings import DevSettings
from connector.redis_client import RedisClient, open_url
from connector.settings import CommonSettings, ConnectorSettings

REDIS_MODES = ("single", "cluster")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `integration`, so `-m "not integration"` runs units."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses Redis on each Redis mode (or the one STREAMREC_TEST_REDIS
    names)."""
    single_only = metafunc.definition.get_closest_marker("single_redis") is not None
    if single_only or "redis_mode" not in metafunc.fixturenames:
        return
    chosen = os.environ.get("STREAMREC_TEST_REDIS")
    metafunc.parametrize("redis_mode", [chosen] if chosen else REDIS_MODES)


@dataclass(frozen=True)
class Endpoints:
    """Where the test session's Kafka and Redis answer, and who provided them."""

    kafka_bootstrap: str
    redis_url: str
    source: str


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - no engine, no client, no permission: all mean "no"
        return False
    return True


def _from_containers(stack: ExitStack) -> Endpoints:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    broker = stack.enter_context(KafkaContainer("apache/kafka:4.1.1").with_kraft())
    cache = stack.enter_context(RedisContainer("redis:7.4"))
    redis_url = f"redis://{cache.get_container_host_ip()}:{cache.get_exposed_port(6379)}/0"
    return Endpoints(broker.get_bootstrap_server(), redis_url, "testcontainers")


def _from_local_processes(stack: ExitStack, workdir: Path) -> Endpoints:
    dev = DevSettings()
    kafka_port, redis_port = process.free_port(), process.free_port()
    broker = local_kafka.start(
        workdir / "kafka", kafka_port, dev.dev_kafka_heap, dev.dev_start_timeout, dev.dev_dir
    )
    stack.callback(process.stop, broker.pid)
    server = local_redis.start(workdir / "redis", redis_port, dev.dev_start_timeout, False)
    stack.callback(process.stop, server.pid)
    return Endpoints(f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0", "local")


@pytest.fixture(scope="session")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """The session's Kafka and Redis; started here when none is given."""
    given_kafka = os.environ.get("STREAMREC_KAFKA_BOOTSTRAP")
    given_redis = os.environ.get("STREAMREC_REDIS_URL")
    with ExitStack() as stack:
        if given_kafka and given_redis:
            yield Endpoints(given_kafka, given_redis, "environment")
        elif _docker_answers():
            yield _from_containers(stack)
        else:
            yield _from_local_processes(stack, tmp_path_factory.mktemp("services"))


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster of the session, started on first use."""
    given = os.environ.get("STREAMREC_TEST_REDIS_CLUSTER_URL")
    if given:
        yield given
        return
    ports = [process.free_port() for _ in range(3)]
    workdir = tmp_path_factory.mktemp("redis-cluster")
    servers = local_redis.start_cluster(workdir, ports, DevSettings().dev_start_timeout)
    try:
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for server in servers:
            process.stop(server.pid)


@pytest.fixture
def redis_mode() -> str:
    """Which Redis the test uses; parametrized per test above, "single" for `single_redis`."""
    return "single"


@pytest.fixture
def redis_url(endpoints: Endpoints, redis_mode: str, request: pytest.FixtureRequest) -> str:
    """The URL of the test's Redis: the session's server, or its cluster."""
    if redis_mode == "cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return endpoints.redis_url


@pytest.fixture
def group() -> str:
    """A dataset group of this test alone: its topics and Redis keys are its own."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(endpoints: Endpoints, redis_url: str, group: str) -> ConnectorSettings:
    """Settings pointing at the session's services, with this test's group, its own schemas
    and trackers topics, and small topics (2 partitions) so tests start fast."""
    return ConnectorSettings(
        dataset_group=group,
        kafka_bootstrap=endpoints.kafka_bootstrap,
        redis_url=redis_url,
        schemas_topic=f"_streamrec.schemas.{group}",
        trackers_topic=f"_streamrec.trackers.{group}",
        topic_partitions=2,
    )


@pytest.fixture
def service_env(settings: CommonSettings, tmp_path: Path) -> dict[str, str]:
    """Environment for a `streamrec` subprocess that should use this test's services."""
    return {
        **os.environ,
        "STREAMREC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMREC_REDIS_URL": settings.redis_url,
        "STREAMREC_DATASET_GROUP": settings.dataset_group,
        "STREAMREC_SCHEMAS_TOPIC": settings.schemas_topic,
        "STREAMREC_TRACKERS_TOPIC": settings.trackers_topic,
        "STREAMREC_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "STREAMREC_DEV_DIR": str(tmp_path / "dev"),
    }


@pytest.fixture
def redis_db(settings: CommonSettings) -> Iterator[RedisClient]:
    """A client of the test's Redis; this test's keys are deleted afterwards."""
    client = open_url(settings.redis_url)
    yield client
    pattern = f"streamrec:{settings.dataset_group}:*"
    keys = list(client.scan_iter(match=pattern))
    if keys:
        client.delete(*keys)
