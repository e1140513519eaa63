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
    masked = {name: _masked_url(value) for name, value in merged.items()}
    click.echo(json.dumps(masked, indent=2, sort_keys=True))


def _masked_url(value: object) -> object:
    """A URL's password (`redis://user:secret@host`) masked like a SecretStr; other values
    as they are."""
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return value
    return f"{scheme}://{userinfo.partition(':')[0]}:**********@{host}"
