"""`streamrec trackers`: the event tracker of each dataset group."""

from __future__ import annotations

import click

from connector.cli.options import group_option, settings_for
from connector.settings import CommonSettings
from connector.trackers import open_trackers


@click.group()
def trackers() -> None:
    """Event trackers: the trackingId producers put in every PutEvents record.

    \b
    Example:
      streamrec trackers create --group shop
    """


@trackers.command()
@group_option
def create(group: str | None) -> None:
    """Create the tracker of the dataset group (one per group) and print its trackingId.

    \b
    Example:
      TRACKING_ID=$(streamrec trackers create)
    """
    settings = settings_for(group)
    click.echo(open_trackers(settings).create(settings.dataset_group).tracking_id)


@trackers.command(name="list")
def list_trackers() -> None:
    """List every tracker: trackingId and dataset group.

    \b
    Example:
      streamrec trackers list
    """
    found = open_trackers(CommonSettings()).list()
    for tracker in found:
        click.echo(f"{tracker.tracking_id}  {tracker.group}")
    if not found:
        click.echo("no trackers (create one: streamrec trackers create)")


@trackers.command()
@group_option
def delete(group: str | None) -> None:
    """Delete the tracker of the dataset group; its trackingId stops being accepted.

    \b
    Example:
      streamrec trackers delete --group shop
    """
    settings = settings_for(group)
    tracker = open_trackers(settings).delete(settings.dataset_group)
    click.echo(f"deleted tracker {tracker.tracking_id} of {tracker.group!r}")
