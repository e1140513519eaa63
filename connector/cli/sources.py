"""`streamrec sources`: existing topics the connector reads in their own shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from connector.cli.options import group_option, settings_for
from connector.exceptions import SourceError
from connector.kafka_admin import topic_exists
from connector.sources.store import FORMATS, open_sources


@click.group()
def sources() -> None:
    """Existing topics mapped to events, items or users (docs/sources.md). The connector
    reads every source of its group, from the sources that exist when it starts.

    \b
    Example:
      streamrec sources create clicks --topic web.clicks --format json --map clicks.json
      streamrec sources list
    """


@sources.command()
@click.argument("name")
@click.option("--topic", required=True, help="The existing topic to read.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option(
    "--map",
    "mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The mapping file (JSON).",
)
@click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The Avro schema of the topic's records, to check the mapping against (avro).",
)
@group_option
def create(
    name: str, topic: str, fmt: str, mapping: Path, schema: Path | None, group: str | None
) -> None:
    """Create source NAME reading TOPIC through the mapping; a mapping that does not parse
    or does not fit the schema is refused with the field and the reason.

    \b
    Example:
      streamrec sources create clicks --topic web.clicks --format json --map clicks.json
    """
    settings = settings_for(group)
    if not topic_exists(settings.kafka_config(), topic):
        raise SourceError(f"topic {topic!r} does not exist on {settings.kafka_bootstrap}")
    source = open_sources(settings).create(
        name, topic, fmt, _json(mapping), _json(schema) if schema else None
    )
    click.echo(
        f"created source {source.name!r} in dataset group {settings.dataset_group!r}: "
        f"{source.topic} ({source.format}) to {source.mapping.target}; restart the "
        "connector to start reading it"
    )


@sources.command()
@click.argument("name")
@click.option(
    "--map", "mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--schema", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@group_option
def update(name: str, mapping: Path, schema: Path | None, group: str | None) -> None:
    """Store a new version of source NAME's mapping (and schema).

    \b
    Example:
      streamrec sources update clicks --map clicks-v2.json
    """
    settings = settings_for(group)
    source = open_sources(settings).update(name, _json(mapping), _json(schema) if schema else None)
    click.echo(f"source {source.name!r} is at version {source.version}; restart the connector")


@sources.command(name="list")
@group_option
def list_sources(group: str | None) -> None:
    """List the sources of the dataset group: name, topic, format, target, version.

    \b
    Example:
      streamrec sources list --group shop
    """
    found = open_sources(settings_for(group)).list()
    for source in found:
        click.echo(
            f"{source.name}  {source.topic}  {source.format}  {source.mapping.target}  "
            f"v{source.version}"
        )
    if not found:
        click.echo("no sources (create one: streamrec sources create NAME --topic T ...)")


@sources.command()
@click.argument("name")
@group_option
def get(name: str, group: str | None) -> None:
    """Show source NAME with its mapping, as JSON.

    \b
    Example:
      streamrec sources get clicks
    """
    click.echo(json.dumps(open_sources(settings_for(group)).get(name).summary(), indent=2))


@sources.command()
@click.argument("name")
@group_option
def delete(name: str, group: str | None) -> None:
    """Delete source NAME; the connector stops reading it when it next starts.

    \b
    Example:
      streamrec sources delete clicks --group shop
    """
    settings = settings_for(group)
    source = open_sources(settings).delete(name)
    click.echo(f"deleted source {source.name!r} of {settings.dataset_group!r}")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {path} as JSON: {exc}") from exc
