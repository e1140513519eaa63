"""`streamrec import`: Personalize-format CSV files into a dataset group, through Kafka."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click
from confluent_kafka import Producer

from connector.bulk_import import ImportSummary, event_records, metadata_records
from connector.exceptions import KafkaUnavailableError, SchemaNotFoundError, TrackerError
from connector.kafka_produce import produce
from connector.registry.registry import open_registry
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
    schema = open_registry(settings).get(settings.dataset_group, dataset).spec
    if schema is None:
        raise SchemaNotFoundError(f"{dataset} is not a dataset schema")
    summary = ImportSummary()
    topic = {
        "interactions": settings.topics.events,
        "items": settings.topics.items,
        "users": settings.topics.users,
    }[dataset]
    producer = Producer({**settings.kafka_config(), "enable.idempotence": True, "linger.ms": 20})
    with (
        file.open(newline="") as handle,
        click.progressbar(
            csv.DictReader(handle),
            label=f"importing {file.name}",
            file=click.get_text_stream("stderr"),
        ) as rows,
    ):
        if dataset == "interactions":
            records = event_records(rows, schema, _tracking_id(settings), summary)
        else:
            records = metadata_records(rows, schema, summary)
        for key, record in records:
            produce(producer, topic, json.dumps(record).encode(), key.encode())
    if producer.flush(60):
        raise KafkaUnavailableError("some records were not acknowledged by the broker")
    _report(summary, topic)


def _tracking_id(settings: ConnectorSettings) -> str:
    tracker = open_trackers(settings).of_group(settings.dataset_group)
    if tracker is None:
        raise TrackerError(
            f"dataset group {settings.dataset_group!r} has no tracker: "
            "run `streamrec trackers create` first"
        )
    return tracker.tracking_id


def _report(summary: ImportSummary, topic: str) -> None:
    click.echo(
        f"published {summary.rows} rows to {topic}: {summary.accepted} pass the checks, "
        f"{summary.rows - summary.accepted} will be dead-lettered"
    )
    for reason, count in summary.reasons.most_common(10):
        click.echo(f"  {count:>8}  {reason}")
