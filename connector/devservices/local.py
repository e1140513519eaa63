"""`streamrec dev up|down|status`: local Kafka and Redis whose PIDs and addresses live in a file.

The state file lets a later command (or another terminal) find, check and stop the services;
PIDs are checked against the process command line before any signal, so a reused PID of an
unrelated program is never killed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from urllib.parse import urlparse

from connector.devservices import kafka, process, redis
from connector.devservices.settings import DevSettings
from connector.exceptions import DevServiceError
from connector.settings import CommonSettings

_LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SERVICES = frozenset({"kafka", "redis"})


@dataclass(frozen=True)
class ServiceState:
    """One running local service: what it is, its PID and the address clients use."""

    name: str
    pid: int
    address: str

    @property
    def running(self) -> bool:
        """Whether the PID is alive and still the process we started (not a reused PID)."""
        marker = "kafka.Kafka" if self.name == "kafka" else f"redis-server 127.0.0.1:{self.port}"
        return process.is_alive(self.pid) and marker in process.command_line(self.pid)

    @property
    def port(self) -> int:
        """The TCP port the service listens on."""
        host_and_port = self.address.split("//")[-1].split("/")[0]
        return int(host_and_port.rsplit(":", 1)[1])

    @property
    def answering(self) -> bool:
        """Whether the service answers a real request."""
        check = kafka.answers if self.name == "kafka" else redis.answers
        return check(self.address)


@dataclass
class UpResult:
    """What `up` did with each service: started it, kept the one this folder runs, or found
    one answering that it did not start (and left it alone)."""

    started: list[ServiceState] = field(default_factory=list)
    kept: list[ServiceState] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


class LocalServices:
    """The local services of one dev folder; `scope` limits what `up` and `down` act on by
    default (the demo stops only what it started, not a Redis `dev up` started before)."""

    def __init__(
        self, dev: DevSettings, common: CommonSettings, scope: frozenset[str] = SERVICES
    ) -> None:
        self._dev = dev
        self._common = common
        self._scope = scope
        self._state_file = dev.dev_dir / "services.json"

    def status(self) -> list[ServiceState]:
        """The services recorded in the state file (running or not)."""
        if not self._state_file.exists():
            return []
        return [ServiceState(**entry) for entry in json.loads(self._state_file.read_text())]

    def up(self, names: frozenset[str] | None = None) -> UpResult:
        """Start those of the `names` services (Kafka and Redis by default) that do not answer,
        on the configured local ports; never stop one that answers.

        A service this dev folder started and that still answers is kept as it is; one that
        answers at the configured address but was started elsewhere (the machine's Redis, a
        broker of another folder) is used and left alone: it is not recorded, so `down` never
        stops it. Only a recorded process that runs but does not answer within the start
        timeout is stopped, and started again."""
        names = self._scope if names is None else names
        recorded = {state.name: state for state in self.status() if state.running}
        kept = [state for state in recorded.values() if state.name not in names]
        result = UpResult()
        to_start: set[str] = set()
        for name in sorted(names):
            own = recorded.get(name)
            if own is not None and self._answers_soon(own):
                result.kept.append(own)
            elif own is None and self._answers_at_configured_address(name):
                result.elsewhere.append(name)
            else:
                if own is not None:  # ours, running, silent past the start timeout
                    process.stop(own.pid)
                to_start.add(name)
        if to_start:
            kafka_port, redis_port = self._ports(frozenset(to_start))
            try:
                if "kafka" in to_start:
                    result.started.append(self._start_kafka(kafka_port))
                if "redis" in to_start:
                    result.started.append(self._start_redis(redis_port))
            except Exception:
                for state in result.started:
                    process.stop(state.pid)
                raise
        self._write([*kept, *result.kept, *result.started])
        return result

    def _answers_soon(self, state: ServiceState) -> bool:
        """Whether a recorded, running service answers (waiting up to the start timeout, as
        it may still be starting)."""
        return process.wait_until(
            lambda: state.answering, self._dev.dev_start_timeout, lambda: state.running
        )

    def _answers_at_configured_address(self, name: str) -> bool:
        if name == "kafka":
            return kafka.answers(self._common.kafka_bootstrap)
        return redis.answers(self._common.redis_url)

    def down(self) -> list[ServiceState]:
        """Stop every recorded service of the scope that still runs; return those stopped.
        Recorded services outside the scope stay running and recorded."""
        running = [state for state in self.status() if state.running]
        stopped = [state for state in running if state.name in self._scope]
        for state in stopped:
            process.stop(state.pid)
        self._write([state for state in running if state.name not in self._scope])
        return stopped

    def env_lines(self) -> list[str]:
        """Shell lines that point streamrec at the running services."""
        names = {"kafka": "STREAMREC_KAFKA_BOOTSTRAP", "redis": "STREAMREC_REDIS_URL"}
        return [f"export {names[state.name]}={state.address}" for state in self.status()]

    def _start_kafka(self, port: int) -> ServiceState:
        broker = kafka.start(
            self._dev.dev_dir / "kafka",
            port,
            self._dev.dev_kafka_heap,
            self._dev.dev_start_timeout,
            self._dev.dev_dir,
        )
        return ServiceState("kafka", broker.pid, f"127.0.0.1:{port}")

    def _start_redis(self, port: int) -> ServiceState:
        server = redis.start(
            self._dev.dev_dir / "redis", port, self._dev.dev_start_timeout, persistent=True
        )
        return ServiceState("redis", server.pid, f"redis://127.0.0.1:{port}/0")

    def _ports(self, names: frozenset[str]) -> tuple[int, int]:
        """Ports from STREAMREC_KAFKA_BOOTSTRAP and STREAMREC_REDIS_URL; those of the services
        to start must be local and free."""
        kafka_host, _, kafka_port = self._common.kafka_bootstrap.split(",")[0].rpartition(":")
        redis_url = urlparse(self._common.redis_url)
        hosts = {"kafka": kafka_host, "redis": redis_url.hostname}
        if any(hosts[name] not in _LOCAL_HOSTS for name in names):
            raise DevServiceError(
                "dev up starts services on this machine only; STREAMREC_KAFKA_BOOTSTRAP and "
                "STREAMREC_REDIS_URL must point at 127.0.0.1 or localhost"
            )
        ports = (int(kafka_port), redis_url.port or 6379)
        for name, port in zip(("kafka", "redis"), ports, strict=True):
            if name in names and process.port_in_use(port):
                raise DevServiceError(
                    f"port {port} is already in use by something that does not answer as "
                    f"{name}; stop what listens there or set STREAMREC_KAFKA_BOOTSTRAP / "
                    "STREAMREC_REDIS_URL to free ports"
                )
        return ports

    def _write(self, states: list[ServiceState]) -> None:
        if not states:
            self._state_file.unlink(missing_ok=True)
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps([asdict(state) for state in states], indent=2))
