"""`streamrec worker`'s /healthz, /readyz and /metrics, for probes and Prometheus.

The worker has no web framework of its own to hang pages on, and three fixed routes do not
need one: a stdlib HTTP server in a daemon thread. /healthz says the process is alive;
/readyz that Redis answers (without it nothing can be published); /metrics counts runs by
mode and outcome, with the last run's duration and the time of the last publish.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from connector.redis_client import REDIS_FAILURES, RedisClient

REGISTRY = CollectorRegistry()
RUNS = Counter(
    "streamrec_worker_runs_total",
    "Runs by mode and outcome.",
    ["mode", "outcome"],
    registry=REGISTRY,
)
LAST_SECONDS = Gauge(
    "streamrec_worker_last_run_seconds", "Duration of the last run.", ["mode"], registry=REGISTRY
)
LAST_PUBLISH = Gauge(
    "streamrec_worker_last_publish_timestamp", "Unix time of the last publish.", registry=REGISTRY
)


def record_run(mode: str, outcome: str, seconds: float) -> None:
    """Count one run; `outcome` is published, skipped, stopped or failed."""
    RUNS.labels(mode, outcome).inc()
    LAST_SECONDS.labels(mode).set(seconds)
    if outcome == "published":
        LAST_PUBLISH.set(time.time())


class _Pages(BaseHTTPRequestHandler):
    ping: Callable[[], bool] = staticmethod(lambda: True)

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if self.path == "/healthz":
            self._send(200, "application/json", json.dumps({"status": "ok"}).encode())
        elif self.path == "/readyz":
            ready = self.ping()
            body = (
                {"status": "ready"}
                if ready
                else {"status": "not ready", "reason": "Redis does not answer"}
            )
            self._send(200 if ready else 503, "application/json", json.dumps(body).encode())
        elif self.path == "/metrics":
            self._send(200, "text/plain; version=0.0.4", generate_latest(REGISTRY))
        else:
            self._send(404, "application/json", json.dumps({"message": "no such page"}).encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Quiet: probes every few seconds would flood the log."""


def serve_health(port: int, client: RedisClient, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104
    """Start the pages in a daemon thread; the caller shuts the server down at exit."""

    def ping() -> bool:
        try:
            return bool(client.ping())
        except REDIS_FAILURES:
            return False

    handler = type("WorkerPages", (_Pages,), {"ping": staticmethod(ping)})
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    return server
