"""A single-node Apache Kafka 4 broker in KRaft mode, run from Maven Central jars with the JDK."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from connector.devservices import process, tools
from connector.exceptions import DevServiceError

log = logging.getLogger(__name__)
_QUIET = logging.getLogger("librdkafka.probe")
_QUIET.setLevel(logging.CRITICAL)

_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
"""


def classpath(cache_dir: Path) -> str:
    """The broker's Java classpath, resolved by Maven once per pom version and cached."""
    pom = resources.files("connector.devservices").joinpath("pom.xml")
    pom_text = pom.read_text()
    cache = (
        cache_dir.resolve()
        / f"kafka-classpath-{hashlib.sha256(pom_text.encode()).hexdigest()[:12]}"
    )
    if not cache.exists():
        _resolve(tools.require("mvn"), pom_text, cache)
    return cache.read_text().strip()


def _resolve(mvn: str, pom_text: str, cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    pom_path = cache.parent / "pom.xml"
    pom_path.write_text(pom_text)
    log.info("resolving the Kafka broker jars from Maven Central (first run only)")
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom_path),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={cache}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if result.returncode != 0 or not cache.exists():
        raise DevServiceError(f"Maven could not resolve the Kafka jars:\n{result.stdout[-2000:]}")


def start(
    workdir: Path, port: int, heap: str, timeout: float, cache_dir: Path
) -> subprocess.Popen[bytes]:
    """Format the data folder on first use, start the broker, and wait until it answers."""
    java, jars = tools.require_java(), classpath(cache_dir)
    properties = _write_properties(workdir, port)
    if not (workdir / "data" / "meta.properties").exists():
        _format(java, jars, properties)
    bootstrap = f"127.0.0.1:{port}"
    return process.start_service(
        f"Kafka on {bootstrap}",
        [java, f"-Xmx{heap}", "-Xss1m", "-cp", jars, "kafka.Kafka", str(properties)],
        workdir / "kafka.log",
        lambda: answers(bootstrap),
        timeout,
    )


def answers(bootstrap: str) -> bool:
    """Whether a broker at `bootstrap` serves metadata requests."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not process.accepts(host, int(port)):
        return False  # checked first: librdkafka would log every refused connection
    try:
        config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _QUIET}
        AdminClient(config).list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    return True


def _write_properties(workdir: Path, port: int) -> Path:
    """Keep the controller port of an existing data folder; KRaft remembers its voters."""
    path = workdir / "server.properties"
    controller_port = process.free_port()
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("controller.quorum.voters="):
                controller_port = int(line.rsplit(":", 1)[1])
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        _PROPERTIES.format(port=port, controller_port=controller_port, data_dir=workdir / "data")
    )
    return path


def _format(java: str, jars: str, properties: Path) -> None:
    cluster_id = uuid.uuid4().hex[:22]
    result = subprocess.run(
        [
            java,
            "-cp",
            jars,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(properties),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise DevServiceError(f"formatting the Kafka data folder failed:\n{result.stdout}")
