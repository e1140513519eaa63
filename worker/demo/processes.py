"""The processes the demo runs beside itself: the connector, the API and the worker, each a
real `streamrec` subprocess as a user would start it.

Each runs in its own session, so Ctrl-C in the terminal reaches only the demo, which then
stops them in order; their output goes to log files under the dev folder, whose last lines
are shown if one fails to start. With `--keep-running` their PIDs go to a state file, so
`streamrec demo --stop` can stop them later (after checking each PID's command line, so a
reused PID is never signalled).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from connector.devservices import process
from connector.devservices.local import LocalServices
from connector.devservices.settings import DevSettings
from connector.exceptions import DevServiceError
from connector.settings import CommonSettings

# The `streamrec` command run by this very interpreter (works in a virtualenv without PATH).
STREAMREC = [sys.executable, "-c", "from connector.cli import main; main()"]
_MARKER = "from connector.cli import main"


@dataclass(frozen=True)
class Child:
    """One started process: its name, PID, log file and the URL that says it is ready."""

    name: str
    pid: int
    log: str
    ready_url: str | None = None


def http_ok(url: str) -> bool:
    """Whether `url` answers 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Children:
    """The demo's subprocesses, started with one environment, stopped in reverse order."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self._log_dir = log_dir
        self._env = env
        self.started: list[Child] = []

    def start(
        self,
        name: str,
        args: list[str],
        ready_url: str | None,
        timeout: float,
        extra_env: dict[str, str] | None = None,
    ) -> Child:
        """Start `streamrec <args>` (with `extra_env` added to the environment) and wait
        until `ready_url` answers 200."""
        log = self._log_dir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [*STREAMREC, *args],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self._env, **(extra_env or {})},
                start_new_session=True,
            )
        child = Child(name, popen.pid, str(log), ready_url)
        self.started.append(child)
        if ready_url is not None:
            alive = lambda: popen.poll() is None  # noqa: E731 - a one-line predicate
            if not process.wait_until(lambda: http_ok(ready_url), timeout, alive):
                raise DevServiceError(
                    f"the {name} did not become ready in {timeout:.0f} s; the end of "
                    f"{log}:\n{_tail(log)}"
                )
        return child

    def stop_all(self) -> list[str]:
        """Stop every started process, newest first; the names of those stopped."""
        stopped = []
        for child in reversed(self.started):
            if process.is_alive(child.pid):
                process.stop(child.pid, grace=20.0)
                stopped.append(child.name)
        self.started.clear()
        return stopped


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def state_file(dev: DevSettings) -> Path:
    """Where a kept-running demo records what it left up."""
    return dev.dev_dir / "demo.json"


def save_state(dev: DevSettings, children: list[Child], services_started: bool, api: str) -> None:
    """Record the processes (and whether the local services are the demo's own)."""
    path = state_file(dev)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "children": [asdict(child) for child in children],
        "services_started": services_started,
        "api": api,
    }
    path.write_text(json.dumps(document, indent=2))


def stop_kept(dev: DevSettings, common: CommonSettings) -> list[str]:
    """Stop what a kept-running demo left up; the names of what was stopped."""
    path = state_file(dev)
    if not path.exists():
        return []
    document = json.loads(path.read_text())
    stopped = []
    for entry in reversed(document["children"]):
        child = Child(**entry)
        if process.is_alive(child.pid) and _MARKER in process.command_line(child.pid):
            process.stop(child.pid, grace=20.0)
            stopped.append(child.name)
    if document.get("services_started"):
        stopped += [state.name for state in LocalServices(dev, common).down()]
    path.unlink(missing_ok=True)
    return stopped
