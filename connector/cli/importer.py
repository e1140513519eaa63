"""`streamrec import`: Personalize-format CSV files into a dataset group, through Kafka."""

from __future__ import annotations

import csv
from pathlib import Path

import click

from connector.bulk_import import ImportSummary, input_topic, publish_rows
from connector.exceptions import TrackerError
from connector.registry.rules import DATASET_TYPES
from connector.settings import ConnectorSettings
from connector.trackers import open_trackers
from connector.wiring import ensure_group_topics


@click.command(name="import")
@click.argument("dataset", type=click.Choice(DATASET_TYPES))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_csv(dataset: str, file: Path) -> None:
    """Publish the rows of FILE (CSV, header row of schema field names) to the dataset
    group's topics; the connector validates them like live events. Prints a summary of the
    rows accepted and rejected, with the reasons.

    \b
    Example:
      streamrec import interactions ratings.csv
    """
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
