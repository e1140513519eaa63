"""`streamrec schemas`: register, check, list and get dataset schemas of a dataset group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from connector.cli.options import group_option, settings_for
from connector.exceptions import SchemaRuleError
from connector.registry.registry import open_registry
from connector.registry.rules import DATASET_TYPES, check_schema

_DATASET = click.Choice(DATASET_TYPES)


@click.group()
def schemas() -> None:
    """Dataset schemas (Interactions, Users, Items), versioned per dataset group.

    \b
    Example:
      streamrec schemas register interactions schemas/interactions.avsc
      streamrec schemas list
    """


@schemas.command()
@click.argument("dataset", type=_DATASET)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@group_option
def register(dataset: str, file: Path, group: str | None) -> None:
    """Register FILE as the next version of DATASET's schema (refused with the reason if it
    breaks a rule or cannot read what the current version accepted).

    \b
    Example:
      streamrec schemas register items schemas/items.avsc --group shop
    """
    settings = settings_for(group)
    entry = open_registry(settings).register(settings.dataset_group, dataset, _read(file))
    click.echo(
        f"{dataset} schema version {entry.version} (id {entry.id}) is registered in "
        f"dataset group {entry.group!r}"
    )


@schemas.command()
@click.argument("dataset", type=_DATASET)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(dataset: str, file: Path) -> None:
    """Check FILE against the rules for DATASET without a broker.

    \b
    Example:
      streamrec schemas check interactions my-interactions.json
    """
    spec = check_schema(dataset, _read(file))
    click.echo(
        f"{file} is a valid {dataset} schema with {len(spec.metadata_fields)} metadata fields"
    )


@schemas.command(name="list")
@group_option
def list_schemas(group: str | None) -> None:
    """List every version of every dataset schema of the group.

    \b
    Example:
      streamrec schemas list --group shop
    """
    settings = settings_for(group)
    entries = open_registry(settings).list(settings.dataset_group)
    if not entries:
        click.echo(f"no schemas registered in dataset group {settings.dataset_group!r}")
    for entry in entries:
        names = ", ".join(field["name"] for field in entry.schema["fields"])
        click.echo(f"{entry.dataset:<13} v{entry.version:<3} id {entry.id:<6} {names}")


@schemas.command()
@click.argument("dataset", type=_DATASET)
@click.option("--version", type=int, help="Version number (default: the latest).")
@group_option
def get(dataset: str, version: int | None, group: str | None) -> None:
    """Print a version of DATASET's schema as JSON.

    \b
    Example:
      streamrec schemas get interactions --version 1
    """
    settings = settings_for(group)
    entry = open_registry(settings).get(settings.dataset_group, dataset, version)
    click.echo(json.dumps(entry.summary(), indent=2))


def _read(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaRuleError(f"{file} is not valid JSON: {exc}") from exc
