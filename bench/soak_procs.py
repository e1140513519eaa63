"""The soak benchmark's processes: `streamrec connector`, `api`, `worker` and the load
generator, each with its own log file, and what is sampled from them while they run
(resident memory from /proc, pages of their web ports)."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.proc_stats import descendants


@dataclass
class Child:
    """A process started by the soak; its output goes to `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    exited_at: float | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        if self.process.poll() is None:
            return True
        self.exited_at = self.exited_at or time.time()
        return False

    def rss_mb(self) -> float | None:
        """Resident set size in MiB of the process and its descendants (the connector's
        list refresh processes), None once the process is gone."""
        parts = self.rss_parts_mb()
        own, descendants = parts["own"], parts["descendants"]
        return None if own is None or descendants is None else own + descendants

    def rss_parts_mb(self) -> dict[str, float | None]:
        """Resident set size in MiB of the process alone and of its descendants together."""
        own = _rss_kib(self.pid)
        if own is None:
            return {"own": None, "descendants": None}
        below = sum(_rss_kib(pid) or 0 for pid in descendants(self.pid))
        return {"own": own / 1024, "descendants": below / 1024}

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        return self.process.returncode

    def log_errors(self) -> list[str]:
        """Lines of the log that report an error or a traceback."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        marks = ("ERROR", "CRITICAL", "Traceback", '"level": "error"')
        return [line[:300] for line in lines if any(mark in line for mark in marks)]


def start(
    name: str, command: list[str], env: dict[str, str], logs: Path, log_name: str | None = None
) -> Child:
    """Start `command` with `env`, stdout and stderr to `logs/<log_name or name>.log`."""
    log = logs / f"{log_name or name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Child(name, process, log)


def get(port: int, path: str, timeout: float = 5) -> tuple[int, bytes]:
    """(status, body) of GET http://127.0.0.1:<port><path>; (0, b"") if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as page:  # noqa: S310 - a local URL we built
            return page.status, page.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_until(check: Callable[[], bool], child: Child, timeout: float, what: str) -> None:
    """Poll `check` until it holds; fail if `child` exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not check():
        if not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.process.returncode}); see {child.log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def api_version(port: int) -> str | None:
    """The model version the API serves, from /readyz."""
    status, body = get(port, "/readyz", timeout=2)
    return str(orjson.loads(body).get("modelVersion")) if status == 200 else None


def prometheus(port: int, prefix: str) -> dict[str, float]:
    """Samples of the /metrics page whose name starts with `prefix`, as {line name: value}."""
    status, body = get(port, "/metrics")
    if status != 200:
        return {}
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(prefix):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None
