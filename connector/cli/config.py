"""`streamrec config`: the documented table of settings and the values in effect."""

from __future__ import annotations

import json

import click

from connector.settings_doc import render, settings_classes


@click.group()
def config() -> None:
    """Settings: every STREAMREC_* variable, its default and its current value.

    \b
    Example:
      streamrec config show
    """


@config.command()
def docs() -> None:
    """Print docs/configuration.md, generated from the settings classes.

    \b
    Example:
      streamrec config docs > docs/configuration.md
    """
    click.echo(render(settings_classes()), nl=False)


@config.command()
def show() -> None:
    """Print the settings in effect (passwords masked) as JSON.

    \b
    Example:
      STREAMREC_DATASET_GROUP=shop streamrec config show
    """
    merged: dict[str, object] = {}
    for cls in settings_classes():
        merged.update(json.loads(cls().model_dump_json()))
    click.echo(json.dumps(merged, indent=2, sort_keys=True))
