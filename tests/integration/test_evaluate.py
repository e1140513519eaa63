"""`streamrec evaluate` as a user runs it: the report of a group's current model version
reproduces the metrics stored with that version, the MovieLens report's baseline figures are
the ones the evaluation routine computes, and the markdown and PNG charts hold them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import redis

from connector.keys import Keys
from connector.settings import CommonSettings, ConnectorSettings
from connector.stores.model_versions import ModelStore
from connector.wiring import event_processor
from tests.integration.helpers import prepare_group
from tests.integration.test_training import publish_walks
from worker.data.movielens import load_ml100k
from worker.evaluation.baselines import MostPopular
from worker.evaluation.holdout import evaluate, split_last
from worker.settings import WorkerSettings
from worker.training.runs import run

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
CHARTS = ("metrics.png", "by_history_length.png", "popularity_bias.png")


def streamrec_evaluate(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "evaluate", *args], env=env, capture_output=True, text=True, timeout=600
    )


def check_files(out: Path) -> tuple[dict, str]:
    """The report's figures and markdown, after checking every chart is a real PNG."""
    for chart in CHARTS:
        data = (out / chart).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, chart
    markdown = (out / "report.md").read_text()
    for chart in CHARTS:
        assert f"]({chart})" in markdown
    return json.loads((out / "report.json").read_text()), markdown


def row(markdown: str, model: str) -> list[str]:
    """The cells of the first table row of `model` (the Metrics table)."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {model} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_report_of_the_current_version_matches_its_stored_metrics(
    settings: ConnectorSettings, redis_db: redis.Redis, service_env: dict[str, str], tmp_path: Path
) -> None:
    processor = event_processor_with_tracker(settings)
    publish_walks(processor, settings)
    common = {name: getattr(settings, name) for name in CommonSettings.model_fields}
    worker = WorkerSettings(
        **common, worker_cache_dir=tmp_path / "cache", training_epochs=3, evaluation_users=20
    )
    version = run("full", worker)
    stored = ModelStore(redis_db, Keys(settings.dataset_group)).meta(version)["metrics"]
    env = {
        **service_env,
        "STREAMREC_WORKER_CACHE_DIR": str(tmp_path / "cache"),
        "STREAMREC_EVALUATION_USERS": "20",
    }
    out = tmp_path / "report"
    result = streamrec_evaluate(["--out", str(out)], env)
    assert result.returncode == 0, result.stderr
    figures, markdown = check_files(out)
    ours = next(model for model in figures["models"] if model["name"] == "streamrec")
    assert ours["metrics"] == pytest.approx(stored, abs=1e-9)
    assert version in figures["title"] and figures["users"] == 20
    assert row(markdown, "streamrec")[0] == f"{stored['ndcg@10']:.4f}"
    assert {model["name"] for model in figures["models"]} >= {"pop", "itemknn", "markov"}
    assert row(markdown, "streamrec")[4] == f"{stored['coverage']:.4f}"


def event_processor_with_tracker(settings: ConnectorSettings):  # noqa: ANN201 - test helper
    tracking_id = prepare_group(settings)
    processor = event_processor(settings)
    processor.tracking_id = tracking_id  # type: ignore[attr-defined]
    return processor


def test_movielens_report_holds_the_figures_of_the_evaluation(tmp_path: Path) -> None:
    shared = REPO / ".streamrec" / "cache" / "datasets"
    shared.mkdir(parents=True, exist_ok=True)  # a dangling link would fail the download
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "datasets").symlink_to(shared)
    env = {**os.environ, "STREAMREC_WORKER_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "report"
    args = ["--movielens", "--max-interactions", "3000", "--epochs", "1", "--out", str(out)]
    result = streamrec_evaluate(args, env)
    assert result.returncode == 0, result.stderr
    figures, markdown = check_files(out)

    data = load_ml100k(shared)
    keep = np.zeros(len(data), dtype=bool)
    keep[np.argsort(data.timestamp, kind="stable")[:3000]] = True
    train, holdouts = split_last(data.select(keep).compact())
    expected = evaluate(MostPopular(train), holdouts)
    pop = next(model for model in figures["models"] if model["name"] == "pop")
    assert pop["metrics"] == pytest.approx(expected, abs=1e-9)
    assert figures["users"] == len(holdouts)
    assert row(markdown, "pop")[:2] == [f"{expected['ndcg@10']:.4f}", f"{expected['hr@10']:.4f}"]
    assert sum(pop["popularity_deciles"]) == pytest.approx(1.0)
    assert pop["popularity_deciles"][0] > 0.95  # popular items first, minus those seen
    buckets = pop["by_length"]
    assert sum(bucket["users"] for bucket in buckets.values()) == len(holdouts)
