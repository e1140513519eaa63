"""`streamrec evaluate` names, in its report's header, the command that was run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import cli
from worker.cli import evaluate as evaluate_cli
from worker.report.figures import Report


@pytest.mark.parametrize(
    ("argv", "header"),
    [
        (["/usr/local/bin/streamrec", "evaluate"], "streamrec evaluate"),
        # -v before the subcommand used to give "streamrec evaluate evaluate"
        (["/usr/local/bin/streamrec", "-v", "evaluate"], "streamrec -v evaluate"),
        (
            ["streamrec", "-v", "evaluate", "--movielens", "--epochs", "2", "--out", "my dir"],
            "streamrec -v evaluate --movielens --epochs 2 --out 'my dir'",
        ),
        (
            ["streamrec", "evaluate", "--group", "shop", "--out", "docs/evaluation"],
            "streamrec evaluate --group shop --out docs/evaluation",
        ),
    ],
)
def test_the_report_names_the_command_run(
    argv: list[str], header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    report = Report("t", "s", "split", 0, 0, 0)

    def write(report: Any, out: Path, command: str) -> list[Path]:
        written.append(command)
        return []

    monkeypatch.setattr(evaluate_cli, "movielens_report", lambda *args: report)
    monkeypatch.setattr(evaluate_cli, "group_report", lambda *args: report)
    monkeypatch.setattr(evaluate_cli, "load_training_data", lambda settings: None)
    monkeypatch.setattr(evaluate_cli, "write", write)
    monkeypatch.setattr(sys, "argv", argv)
    cli.add_command(evaluate_cli.evaluate, "evaluate")
    result = CliRunner().invoke(cli, argv[1:])
    assert result.exit_code == 0, result.output
    assert written == [header]
