"""The `streamrec` command as a user runs it: a real subprocess against the real services."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.settings import ConnectorSettings
from tests.conftest import EXAMPLES
from tests.integration.helpers import prepare_group

STREAMREC = ["streamrec"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(STREAMREC + args, env=env, capture_output=True, text=True, timeout=300)


def test_help_lists_the_command_groups() -> None:
    result = subprocess.run(STREAMREC + ["--help"], capture_output=True, text=True, check=True)
    for command in ("schemas", "dev", "demo", "config"):
        assert command in result.stdout


def test_register_accepts_the_reference_example(service_env: dict[str, str]) -> None:
    result = run(
        [
            "schemas",
            "register",
            "interactions",
            str(EXAMPLES / "valid/interactions-reference.json"),
        ],
        service_env,
    )
    assert result.returncode == 0, result.stderr
    assert "interactions schema version 1" in result.stdout
    listed = run(["schemas", "list"], service_env)
    assert "interactions  v1" in listed.stdout and "IMPRESSION" in listed.stdout
    got = json.loads(run(["schemas", "get", "interactions", "--version", "1"], service_env).stdout)
    assert got["schema"] == json.loads((EXAMPLES / "valid/interactions-reference.json").read_text())


def test_register_refuses_with_the_reason_on_stderr(service_env: dict[str, str]) -> None:
    result = run(
        [
            "schemas",
            "register",
            "interactions",
            str(EXAMPLES / "invalid/interactions-timestamp-string.json"),
        ],
        service_env,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "Error: field TIMESTAMP must be of type long, not string"
    assert result.stdout == ""


def test_incompatible_version_is_refused_on_the_command_line(service_env: dict[str, str]) -> None:
    assert (
        run(
            ["schemas", "register", "interactions", str(EXAMPLES / "evolution/base.json")],
            service_env,
        ).returncode
        == 0
    )
    result = run(
        [
            "schemas",
            "register",
            "interactions",
            str(EXAMPLES / "evolution/narrowed-long-to-int.json"),
        ],
        service_env,
    )
    assert result.returncode != 0
    assert "type narrowed from long to int" in result.stderr


def test_file_that_is_not_json_is_refused(service_env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    result = run(["schemas", "register", "users", str(broken)], service_env)
    assert result.returncode != 0 and "is not valid JSON" in result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process's socket listens on, on every address, during the test."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - the servers listen on 0.0.0.0 by default
        taken.listen()
        yield int(taken.getsockname()[1])


def test_api_on_a_busy_port_says_so_in_one_line(
    service_env: dict[str, str], busy_port: int
) -> None:
    result = run(["api", "--port", str(busy_port)], service_env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: port {busy_port} is in use (0.0.0.0:{busy_port}: address already in use): "
        "stop what listens there, or choose another port with --port or STREAMREC_API_PORT"
    ]


def test_connector_on_a_busy_web_port_says_so_in_one_line(
    settings: ConnectorSettings, service_env: dict[str, str], busy_port: int
) -> None:
    prepare_group(settings)
    env = {**service_env, "STREAMREC_CONNECTOR_WEB_PORT": str(busy_port)}
    result = run(["connector"], env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: port {busy_port} is in use (0.0.0.0:{busy_port}: address already in use): "
        "stop what listens there, or choose another port with STREAMREC_CONNECTOR_WEB_PORT"
    ]


# The whole demo is tests/integration/test_demo.py's; here only its first steps matter.
TINY_DEMO = [
    "--max-interactions", "3000", "--replay-events", "100", "--replay-seconds", "3",
    "--epochs", "1", "--users", "1", "--api-port", "0",
]  # fmt: skip


def test_demo_validates_the_example_events(service_env: dict[str, str], tmp_path: Path) -> None:
    env = {**service_env, "STREAMREC_WORKER_CACHE_DIR": str(tmp_path / "cache")}
    result = run(["demo", *TINY_DEMO], env)
    assert result.returncode == 0, result.stderr
    assert "registered interactions schema v1" in result.stdout
    assert '"ITEM_ID": "item-42"' in result.stdout
    assert "rejected -> ITEM_ID is required but missing" in result.stdout
