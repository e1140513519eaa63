"""`streamrec filters`: named recommendation filters of a dataset group."""

from __future__ import annotations

import click

from connector.cli.options import group_option, settings_for
from connector.filters.grammar import parse
from connector.filters.store import open_filters


@click.group()
def filters() -> None:
    """Recommendation filters in Personalize's filter expression language (docs/filters.md).

    \b
    Example:
      streamrec filters create unseen 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")'
      streamrec filters list
    """


@filters.command()
@click.argument("name")
@click.argument("expression")
@group_option
def create(name: str, expression: str, group: str | None) -> None:
    """Create filter NAME from EXPRESSION; a malformed expression is refused with the
    position and reason, and a name already in use is refused.

    \b
    Example:
      streamrec filters create by-genre 'INCLUDE ItemID WHERE Items.GENRES IN ($GENRES)'
    """
    settings = settings_for(group)
    named = open_filters(settings).create(name, expression)
    parameters = ", ".join(sorted(named.filter.parameters)) or "none"
    click.echo(
        f"created filter {named.name!r} in dataset group {settings.dataset_group!r} "
        f"(parameters: {parameters})"
    )


@filters.command()
@click.argument("expression")
def check(expression: str) -> None:
    """Check EXPRESSION without a broker: exit status 0 and its parameters, or the error.

    \b
    Example:
      streamrec filters check 'INCLUDE ItemID WHERE Items.PRICE < 20'
    """
    parameters = ", ".join(sorted(parse(expression).parameters)) or "none"
    click.echo(f"valid (parameters: {parameters})")


@filters.command(name="list")
@group_option
def list_filters(group: str | None) -> None:
    """List the filters of the dataset group: name and expression.

    \b
    Example:
      streamrec filters list --group shop
    """
    found = open_filters(settings_for(group)).list()
    for named in found:
        click.echo(f"{named.name}  {named.filter.text}")
    if not found:
        click.echo("no filters (create one: streamrec filters create NAME 'EXPRESSION')")


@filters.command()
@click.argument("name")
@group_option
def delete(name: str, group: str | None) -> None:
    """Delete filter NAME of the dataset group.

    \b
    Example:
      streamrec filters delete by-genre --group shop
    """
    settings = settings_for(group)
    named = open_filters(settings).delete(name)
    click.echo(f"deleted filter {named.name!r} of {settings.dataset_group!r}")
