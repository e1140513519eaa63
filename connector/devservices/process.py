"""Starting, finding and stopping the background processes of local services."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from connector.exceptions import DevServiceError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    return accepts("127.0.0.1", port)


def accepts(host: str, port: int) -> bool:
    """Whether `host`:`port` accepts a TCP connection within half a second."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` in its own session (so it outlives the CLI), output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def start_service(
    name: str, command: list[str], log_path: Path, ready: Callable[[], bool], timeout: float
) -> subprocess.Popen[bytes]:
    """Spawn `command` and wait until `ready`; on failure stop it and say where its log is."""
    child = spawn(command, log_path)
    if not wait_until(ready, timeout, lambda: child.poll() is None):
        stop(child.pid)
        raise DevServiceError(f"{name} did not start in {timeout:.0f}s; see {log_path}")
    return child


def wait_until(check: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> bool:
    """Poll `check` until it is true; give up at `timeout` or as soon as `alive` is false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if not alive():
            return False
        time.sleep(0.25)
    return False


def is_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def command_line(pid: int) -> str:
    """The command line of `pid` ('' when it is gone or unreadable), to avoid killing strangers."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stop(pid: int, grace: float = 30.0) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL it if it is still there after `grace`."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if is_alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while is_alive(pid):
            time.sleep(0.1)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
