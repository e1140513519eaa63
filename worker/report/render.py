"""Writes the evaluation report: report.md (docs-style), three PNG charts and report.json.

matplotlib draws the charts with its Agg backend (files only, no display). report.json holds
every figure the markdown shows, for scripts and tests.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
from matplotlib.figure import Figure  # noqa: E402

from worker.report.figures import DECILES, TOP, Report  # noqa: E402

HEADLINE = ("ndcg@10", "hr@10", "mrr@25", "precision@10", "coverage")
CHARTS = {
    "metrics": "metrics.png",
    "by_length": "by_history_length.png",
    "popularity": "popularity_bias.png",
}


def write(report: Report, out: Path, command: str) -> list[Path]:
    """Write the report's files into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _metrics_chart(report, out / CHARTS["metrics"]),
        _length_chart(report, out / CHARTS["by_length"]),
        _popularity_chart(report, out / CHARTS["popularity"]),
    ]
    (out / "report.json").write_text(json.dumps(asdict(report), indent=2))
    (out / "report.md").write_text(markdown(report, command))
    return [out / "report.md", out / "report.json", *paths]


def markdown(report: Report, command: str) -> str:
    """The report as markdown, figures to 4 decimals."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Evaluation: {report.title}",
        "",
        f"Made by `{command}` on {when}. Data: {report.source}. Split: {report.split}; "
        f"{report.training_rows:,} training interactions, {report.users:,} users evaluated, "
        f"{report.items:,} items ranked. Every model ranks the whole catalog for each user "
        "with the items already in the user's history excluded.",
        "",
        "## Metrics",
        "",
        f"![metrics]({CHARTS['metrics']})",
        "",
        "| model | " + " | ".join(HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    for model in report.models:
        figures = " | ".join(f"{model.metrics[name]:.4f}" for name in HEADLINE)
        lines.append(f"| {model.name} | {figures} |")
    lines += _length_section(report) + _bias_section(report)
    if report.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"


def _length_section(report: Report) -> list[str]:
    buckets = list(report.models[0].by_length) if report.models else []
    users = [int(report.models[0].by_length[b]["users"]) for b in buckets] if buckets else []
    lines = [
        "",
        "## NDCG@10 by user history length",
        "",
        "Events in the user's history before the held-out one.",
        "",
        f"![by history length]({CHARTS['by_length']})",
        "",
        "| model | "
        + " | ".join(f"{b} ({n:,} users)" for b, n in zip(buckets, users, strict=True))
        + " |",
        "|---|" + "---:|" * len(buckets),
    ]
    for model in report.models:
        cells = " | ".join(f"{model.by_length[b]['ndcg@10']:.4f}" for b in buckets)
        lines.append(f"| {model.name} | {cells} |")
    return lines


def _bias_section(report: Report) -> list[str]:
    lines = [
        "",
        "## Coverage and popularity bias",
        "",
        f"Of the top-{TOP} lists: the share of slots taken by the 10% most popular items "
        "(by training interactions), the mean popularity percentile of recommended items "
        "(100 = the most popular item), and the Gini coefficient of how often each item is "
        "recommended (0 = evenly, 1 = one item everywhere). Coverage: items in any top-25 list.",
        "",
        f"![popularity bias]({CHARTS['popularity']})",
        "",
        "| model | coverage | top-10% items' share | mean popularity percentile | Gini |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in report.models:
        lines.append(
            f"| {model.name} | {model.metrics['coverage']:.4f} | "
            f"{model.popularity_deciles[0]:.4f} | {model.mean_popularity_percentile:.4f} | "
            f"{model.gini:.4f} |"
        )
    return lines


def _metrics_chart(report: Report, path: Path) -> Path:
    names = ("ndcg@10", "hr@10", "mrr@25", "precision@10")
    figure, axes = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(report.models), 1)
    for index, model in enumerate(report.models):
        positions = [n + index * width for n in range(len(names))]
        axes.bar(positions, [model.metrics[n] for n in names], width, label=model.name)
    axes.set_xticks([n + 0.4 - width / 2 for n in range(len(names))], names)
    axes.set_title(f"Held-out metrics: {report.title}")
    axes.legend()
    return _save(figure, path)


def _length_chart(report: Report, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for model in report.models:
        buckets = list(model.by_length)
        axes.plot(buckets, [model.by_length[b]["ndcg@10"] for b in buckets], "o-", label=model.name)
    axes.set_xlabel("events in the user's history")
    axes.set_ylabel("NDCG@10")
    axes.set_title("NDCG@10 by user history length")
    axes.legend()
    return _save(figure, path)


def _popularity_chart(report: Report, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    labels = [f"{10 * d}-{10 * (d + 1)}%" for d in range(DECILES)]
    for model in report.models:
        coverage = model.metrics["coverage"]
        axes.plot(
            labels, model.popularity_deciles, "o-", label=f"{model.name} (cov {coverage:.2f})"
        )
    axes.set_xlabel("items by popularity (most popular 10% first)")
    axes.set_ylabel(f"share of top-{TOP} slots")
    axes.set_title("Popularity bias of recommendations")
    axes.tick_params(axis="x", labelrotation=30)
    axes.legend()
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
