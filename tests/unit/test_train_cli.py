"""`streamrec train` prints the new version's held-out metrics, not only its id."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import cli
from worker.cli import train as train_cli

META: dict[str, Any] = {
    "mode": "full",
    "training_seconds": 12.345,
    "data": {"interactions": 1200, "users": 40, "items": 25},
    "metrics": {
        "coverage": 0.64,
        "mrr@25": 0.41,
        "ndcg@5": 0.38,
        "ndcg@10": 0.4321,
        "hr@10": 0.9,
        "precision@5": 0.17,
    },
}


def invoke(args: list[str], meta: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(train_cli, "run", lambda mode, settings, report: "v-new")
    monkeypatch.setattr(train_cli, "_meta", lambda settings, version: meta)
    cli.add_command(train_cli.train, "train")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_prints_the_headline_metrics_then_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke(["train", "--mode", "full"], META, monkeypatch).splitlines()
    assert out == [
        "FULL on 1,200 interactions of 40 users and 25 items in 12.3 s",
        "held-out metrics: ndcg@10=0.4321  hr@10=0.9000  mrr@25=0.4100  coverage=0.6400",
        "published model version v-new",
    ]


def test_verbose_prints_every_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke(["-v", "train"], META, monkeypatch).splitlines()
    assert out[1] == "held-out metrics:"
    assert out[2:-1] == [
        "  coverage     0.6400",
        "  mrr@25       0.4100",
        "  ndcg@5       0.3800",
        "  ndcg@10      0.4321",
        "  hr@10        0.9000",
        "  precision@5  0.1700",
    ]
    assert out[-1] == "published model version v-new"


def test_an_update_says_whose_metrics_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = {**META, "mode": "update", "based_on": "v-old"}
    out = invoke(["train", "--mode", "update"], meta, monkeypatch)
    assert "held-out metrics (of the FULL run this UPDATE builds on): ndcg@10=0.4321" in out


def test_without_held_out_users_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke(["train"], {**META, "metrics": {}}, monkeypatch)
    assert "held-out metrics: none (no user had two interactions to hold one out)" in out
