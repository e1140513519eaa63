"""`streamrec import`: Personalize-format CSV files into a dataset group, through Kafka."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import click
from click.core import ParameterSource
from confluent_kafka import KafkaException

from connector.bulk_import import ImportSummary, input_topic, publish_rows
from connector.exceptions import TrackerError
from connector.registry.rules import DATASET_TYPES
from connector.settings import ConnectorSettings
from connector.topic_state import connector_behind
from connector.trackers import open_trackers
from connector.wiring import ensure_group_topics


@click.command(name="import")
@click.argument("dataset", type=click.Choice(DATASET_TYPES))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--wait",
    is_flag=True,
    help="Then wait until the connector has processed every record published (stored it, or "
    "dead-lettered it), with progress on stderr.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: give up after this long, with exit status 1.",
)
def import_csv(dataset: str, file: Path, wait: bool, timeout: float) -> None:
    """Publish the rows of FILE (CSV, header row of schema field names) to the dataset
    group's topics; the connector validates them like live events. Prints a summary of the
    rows accepted and rejected, with the reasons.

    Returns once Kafka has the records; the connector stores them a little later. With
    --wait it returns when the connector's consumer group has committed past every record
    this import published, so a `streamrec train` right after sees all of them.

    \b
    Examples:
      streamrec import interactions ratings.csv
      streamrec import items items.csv --wait --timeout 300
    """
    given = click.get_current_context().get_parameter_source("timeout")
    if given is ParameterSource.COMMANDLINE and not wait:
        raise click.UsageError("--timeout applies to --wait only: add --wait")
    settings = ConnectorSettings()
    ensure_group_topics(settings)
    tracking_id = _tracking_id(settings) if dataset == "interactions" else ""
    with (
        file.open(newline="") as handle,
        click.progressbar(
            csv.DictReader(handle),
            label=f"importing {file.name}",
            file=click.get_text_stream("stderr"),
        ) as rows,
    ):
        summary = publish_rows(settings, dataset, rows, tracking_id)
    _report(summary, settings, dataset)
    if wait:
        seconds = wait_for_connector(
            lambda: connector_behind(settings, summary.topic, summary.offsets),
            summary.records,
            timeout,
            f"`streamrec connector` of dataset group {settings.dataset_group!r}",
        )
        click.echo(
            f"the connector has processed the {summary.records:,} records published "
            f"(waited {seconds:.1f} s)"
        )


def _tracking_id(settings: ConnectorSettings) -> str:
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    if tracker is None:
        raise TrackerError(
            f"dataset group {settings.dataset_group!r} has no tracker: "
            "run `streamrec trackers create` first"
        )
    return tracker.tracking_id


def _report(summary: ImportSummary, settings: ConnectorSettings, dataset: str) -> None:
    topic = input_topic(settings, dataset)
    click.echo(
        f"published {summary.rows} rows to {topic}: {summary.accepted} pass the checks, "
        f"{summary.rows - summary.accepted} will be dead-lettered"
    )
    for reason, count in summary.reasons.most_common(10):
        click.echo(f"  {count:>8}  {reason}")


_POLL_SECONDS = 0.5
_LINE_SECONDS = 10.0  # progress lines when stderr is not a terminal (a log, CI)


def wait_for_connector(
    behind: Callable[[], int], total: int, timeout: float, connector: str
) -> float:
    """Poll `behind` (records published that the connector has not committed yet) until it
    is 0, with progress on stderr; returns the seconds waited. Raises a ClickException when
    `timeout` seconds pass first."""
    stderr = click.get_text_stream("stderr")
    start = last_line = time.monotonic()
    left, problem = total, ""
    with click.progressbar(length=total, label="connector processing", file=stderr) as bar:
        while True:
            try:
                left, problem = behind(), ""
            except KafkaException as exc:  # a broker restarting: try again until the timeout
                problem = f" (last error reading its offsets: {exc})"
            bar.update(max(0, total - left - bar.pos))
            if left == 0 and not problem:
                return time.monotonic() - start
            now = time.monotonic()
            if now - start >= timeout:
                break
            if not stderr.isatty() and now - last_line >= _LINE_SECONDS:
                click.echo(f"connector: {total - left:,} of {total:,} records processed", err=True)
                last_line = now
            time.sleep(_POLL_SECONDS)
    raise click.ClickException(
        f"timed out after {timeout:g} s: {left:,} of the {total:,} records published are not "
        f"processed yet{problem}. They are in Kafka and will be stored once {connector} "
        "catches up; is it running? (`streamrec status` shows its lag)"
    )
