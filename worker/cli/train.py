"""`streamrec train` (one run) and `streamrec worker` (runs on a schedule)."""

from __future__ import annotations

import click

from connector.cli.options import group_option
from worker.pipeline import Stopped
from worker.runs import Mode, run
from worker.schedule import serve
from worker.settings import WorkerSettings


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

    \b
    Example:
      streamrec -v train --mode full --group shop
    """
    try:
        version = run(mode, _settings(group), report=lambda line: click.echo(line, err=True))
    except Stopped as exc:
        raise click.ClickException("stopped before publishing; nothing changed") from exc
    click.echo(f"published model version {version}")


@click.command()
@group_option
def worker(group: str | None) -> None:
    """Run FULL and UPDATE on their schedules until SIGTERM (see STREAMREC_WORKER_*).

    \b
    Example:
      STREAMREC_WORKER_UPDATE_INTERVAL_SECONDS=120 streamrec -v worker --group shop
    """
    serve(_settings(group))
