"""`streamrec evaluate`: an evaluation report (markdown and PNG charts) of the current model
version against the baselines, or of the leave-last-out benchmark on MovieLens-100K."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from connector.cli.options import group_option
from worker.data.cache import load_training_data
from worker.report.figures import group_report, movielens_report
from worker.report.render import write
from worker.settings import WorkerSettings


@click.command()
@group_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/evaluation"),
    show_default=True,
    help="Folder the report is written to.",
)
@click.option(
    "--movielens",
    is_flag=True,
    help="Run the leave-last-out benchmark on MovieLens-100K instead (trains our model here).",
)
@click.option(
    "--max-interactions",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --movielens: only the earliest N ratings (0: all).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="With --movielens: most training epochs of our model.",
)
def evaluate(
    group: str | None, out: Path, movielens: bool, max_interactions: int, epochs: int
) -> None:
    """Write OUT/report.md with PNG charts: our model against the baselines (popularity,
    item-kNN, Markov chain, and ALS when `implicit` is installed) on held-out events,
    metrics by user history length, coverage and popularity bias; figures also in
    OUT/report.json.

    By default, the dataset group's current model version, on the split its FULL run
    used (so its figures match `streamrec models list`).

    \b
    Examples:
      streamrec evaluate --group demo --out docs/evaluation
      streamrec evaluate --movielens --out docs/evaluation/movielens
    """
    settings = WorkerSettings(dataset_group=group) if group else WorkerSettings()
    if movielens:
        click.echo("training our model and the baselines on MovieLens-100K", err=True)
        cache = settings.worker_cache_dir / "datasets"
        report = movielens_report(cache, max_interactions, epochs, settings.training_seed)
    else:
        click.echo(f"reading the Interactions dataset of {settings.dataset_group!r}", err=True)
        report = group_report(settings, load_training_data(settings))
    paths = write(report, out, command_line(sys.argv))
    for model in report.models:
        figures = "  ".join(f"{n}={model.metrics[n]:.4f}" for n in ("ndcg@10", "hr@10"))
        click.echo(f"{model.name:<10} {figures}  coverage={model.metrics['coverage']:.4f}")
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {', '.join(str(path) for path in paths)}")


def command_line(argv: list[str]) -> str:
    """The command as it was run, for the report's header: `streamrec` and every argument
    after the program's path, the options before the subcommand (such as -v) included."""
    return shlex.join(["streamrec", *argv[1:]])
