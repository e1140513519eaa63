"""Missing programs get an error that says exactly what to install."""

from __future__ import annotations

import pytest

from connector.devservices import tools
from connector.exceptions import MissingToolError


@pytest.mark.parametrize(
    ("program", "hint"),
    [
        ("java", "apt-get install -y openjdk-17-jdk-headless"),
        ("mvn", "apt-get install -y maven"),
        ("redis-server", "apt-get install -y redis-server"),
    ],
)
def test_missing_program_names_the_package(
    program: str, hint: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=f"{program} not found on PATH") as missing:
        tools.require(program)
    assert hint in str(missing.value)


def test_too_old_java_is_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="Kafka 4 needs Java 17\\+, but .* is Java 11"):
        tools.require_java()
