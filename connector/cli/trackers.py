"""`streamrec trackers`: the event tracker of each dataset group."""

from __future__ import annotations

import click

from connector.settings import CommonSettings
from connector.trackers import open_trackers

_GROUP = click.option("--group", help="Dataset group (default: STREAMREC_DATASET_GROUP).")


def _settings(group: str | None) -> CommonSettings:
    return CommonSettings(dataset_group=group) if group else CommonSettings()


@click.group()
def trackers() -> None:
    """Event trackers: the trackingId producers put in every PutEvents record.

    \b
    Example:
      streamrec trackers create --group shop
    """


@trackers.command()
@_GROUP
def create(group: str | None) -> None:
    """Create the tracker of the dataset group (one per group) and print its trackingId.

    \b
    Example:
      TRACKING_ID=$(streamrec trackers create)
    """
    settings = _settings(group)
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
@_GROUP
def delete(group: str | None) -> None:
    """Delete the tracker of the dataset group; its trackingId stops being accepted.

    \b
    Example:
      streamrec trackers delete --group shop
    """
    settings = _settings(group)
    tracker = open_trackers(settings).delete(settings.dataset_group)
    click.echo(f"deleted tracker {tracker.tracking_id} of {tracker.group!r}")
