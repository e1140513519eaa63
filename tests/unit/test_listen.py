"""`streamrec api` and `streamrec connector` on an address they cannot listen on: exit
status 1 and one line on stderr, not a traceback."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import click
import pytest
from aiohttp import web
from click.testing import CliRunner

from connector.cli import api as api_cli
from connector.cli import cli
from connector.cli.listen import Listen


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on (127.0.0.1), for the length of the test."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_a_port_in_use_is_one_line(busy_port: int) -> None:
    with pytest.raises(click.ClickException) as raised:
        Listen("127.0.0.1", busy_port, "--port").check()
    assert raised.value.message == (
        f"port {busy_port} is in use (127.0.0.1:{busy_port}: address already in use): "
        "stop what listens there, or choose another port with --port"
    )


def test_a_free_port_passes_and_stays_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    Listen("127.0.0.1", port, "--port").check()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the check let go of it


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            OSError(errno.EACCES, "Permission denied"),
            "no permission to listen on port 80 (ports below 1024 need privileges): "
            "choose another port with --port",
        ),
        (
            OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
            "cannot listen on 10.9.9.9:80: not an address of this machine; "
            "choose another host with --host",
        ),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "cannot listen on '10.9.9.9': Name or service not known; "
            "choose another host with --host",
        ),
        (OSError(errno.EMFILE, "Too many open files"), None),
    ],
)
def test_each_address_problem_says_what_to_do(error: OSError, line: str | None) -> None:
    assert Listen("10.9.9.9", 80, "--port", "--host").problem(error) == line


def test_other_errors_keep_their_traceback() -> None:
    error = OSError(errno.EMFILE, "Too many open files")
    with pytest.raises(OSError) as raised:
        Listen("127.0.0.1", 8080, "--port").failed(error)
    assert raised.value is error


def api_port_in_use(port: int) -> str:
    """The one line `streamrec api` gives for a port in use."""
    return (
        f"Error: port {port} is in use (127.0.0.1:{port}: address already in use): "
        "stop what listens there, or choose another port with --port or STREAMREC_API_PORT"
    )


def test_api_on_a_busy_port_exits_with_one_line(
    busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMREC_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing there
    cli.add_command(api_cli.api, "api")
    result = CliRunner().invoke(cli, ["api", "--host", "127.0.0.1", "--port", str(busy_port)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [api_port_in_use(busy_port)]


def test_api_taken_after_the_check_still_exits_with_one_line(
    busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_cli, "create_app", lambda settings: web.Application())
    monkeypatch.setattr(Listen, "check", lambda self: None)  # the port taken just after it
    cli.add_command(api_cli.api, "api")
    result = CliRunner().invoke(cli, ["api", "--host", "127.0.0.1", "--port", str(busy_port)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [api_port_in_use(busy_port)]
