"""`streamrec train` (one run) and `streamrec worker` (runs on a schedule)."""

from __future__ import annotations

from typing import Any

import click

from connector.cli.options import group_option
from connector.keys import Keys
from connector.redis_client import connect
from connector.stores.model_versions import ModelStore
from worker.settings import WorkerSettings
from worker.training.pipeline import Stopped
from worker.training.runs import Mode, run
from worker.training.schedule import serve


def _settings(group: str | None) -> WorkerSettings:
    return WorkerSettings(dataset_group=group) if group else WorkerSettings()


@click.command()
@click.option(
    "--mode",
    type=click.Choice(["full", "update"]),
    default="full",
    show_default=True,
    help="full: train a new model; update: add new items and refresh popularity.",
)
@group_option
def train(mode: Mode, group: str | None) -> None:
    """Train (or update) the model once from the Interactions dataset and publish it.

    Progress goes to stderr. Then prints what the new version was trained on and its
    held-out metrics (the ones `streamrec models list` shows; all of them with -v), and,
    last, `published model version <id>`.

    \b
    Example:
      streamrec -v train --mode full --group shop
    """
    settings = _settings(group)
    try:
        version = run(mode, settings, report=lambda line: click.echo(line, err=True))
    except Stopped as exc:
        raise click.ClickException("stopped before publishing; nothing changed") from exc
    verbose = bool(click.get_current_context().find_root().params.get("verbose"))
    for line in describe(_meta(settings, version), verbose):
        click.echo(line)
    click.echo(f"published model version {version}")


# The metrics shown without -v, when the version has them (as `streamrec models list`).
HEADLINE_METRICS = ("ndcg@10", "hr@10", "mrr@25", "coverage")


def _meta(settings: WorkerSettings, version: str) -> dict[str, Any]:
    """The meta the version was published with, read back from Redis."""
    return ModelStore(connect(settings), Keys(settings.dataset_group)).meta(version)


def describe(meta: dict[str, Any], verbose: bool) -> list[str]:
    """Lines about a published version: what it was trained on, in how long, and its
    held-out metrics, the headline ones or, when `verbose`, all of them."""
    data = meta.get("data", {})
    mode = str(meta.get("mode", "?")).upper()
    lines = [
        f"{mode} on {data.get('interactions', 0):,} interactions of {data.get('users', 0):,} "
        f"users and {data.get('items', 0):,} items in {meta.get('training_seconds', 0):.1f} s"
    ]
    metrics: dict[str, float] = meta.get("metrics") or {}
    source = "held-out metrics"
    if meta.get("based_on"):  # an UPDATE keeps the metrics of the FULL run it builds on
        source += " (of the FULL run this UPDATE builds on)"
    if not metrics:
        return [*lines, f"{source}: none (no user had two interactions to hold one out)"]
    if verbose:
        width = max(len(name) for name in metrics)
        return [*lines, f"{source}:"] + [
            f"  {name:<{width}}  {value:.4f}" for name, value in metrics.items()
        ]
    shown = [name for name in HEADLINE_METRICS if name in metrics] or list(metrics)[:4]
    return [*lines, f"{source}: " + "  ".join(f"{n}={metrics[n]:.4f}" for n in shown)]


@click.command()
@group_option
def worker(group: str | None) -> None:
    """Run FULL and UPDATE on their schedules until SIGTERM (see STREAMREC_WORKER_*).

    \b
    Example:
      STREAMREC_WORKER_UPDATE_INTERVAL_SECONDS=120 streamrec -v worker --group shop
    """
    serve(_settings(group))
