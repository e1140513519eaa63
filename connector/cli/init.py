"""`streamrec init`: make a dataset group ready for the connector, once, idempotently.

Deployments run it as a one-shot step before the long-running processes start (the `init`
service of docker-compose.yml, a Job or an init container on Kubernetes), so it must be safe
to run on every start: each step creates only what is missing and leaves the rest as it is,
and a second run writes nothing.
"""

from __future__ import annotations

import click

import schemas
from connector.cli.options import group_option
from connector.filters.store import open_filters
from connector.registry.registry import open_registry
from connector.registry.schema import ENVELOPE
from connector.settings import ConnectorSettings
from connector.trackers import open_trackers
from connector.wiring import ensure_group_topics

# Filters most deployments want; created only when the group has no filter of that name.
DEFAULT_FILTERS = {
    "unseen": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
}


@click.command()
@group_option
@click.option(
    "--default-filters/--no-default-filters",
    default=True,
    show_default=True,
    help="Create the default filters (e.g. 'unseen') when missing.",
)
def init(group: str | None, default_filters: bool) -> None:
    """Create the dataset group's topics (STREAMREC_TOPIC_PARTITIONS partitions each),
    register the shipped Interactions, Items and Users schemas, create the group's tracker
    and the default filters, each only if missing; print the trackingId last.

    \b
    Example:
      TRACKING_ID=$(streamrec init | tail -n1)
    """
    settings = ConnectorSettings(dataset_group=group) if group else ConnectorSettings()
    ensure_group_topics(settings)
    click.echo(
        f"topics of {settings.dataset_group!r}: {settings.topic_partitions} partitions", err=True
    )
    _register_schemas(settings)
    if default_filters:
        _create_filters(settings)
    click.echo(_tracking_id(settings))


def _register_schemas(settings: ConnectorSettings) -> None:
    """Register each shipped schema; one already registered keeps its version."""
    registry = open_registry(settings)
    group = settings.dataset_group
    registry.register(group, ENVELOPE, schemas.load(schemas.ENVELOPE_FILE))
    for dataset, file in schemas.DATASET_FILES.items():
        registered = registry.register(group, dataset, schemas.load(file))
        click.echo(f"schema {dataset}: version {registered.version}", err=True)


def _create_filters(settings: ConnectorSettings) -> None:
    """Create each default filter the group does not have (a changed one is left alone)."""
    store = open_filters(settings)
    existing = {named.name for named in store.list()}
    for name, expression in DEFAULT_FILTERS.items():
        if name in existing:
            click.echo(f"filter {name}: kept", err=True)
        else:
            store.create(name, expression)
            click.echo(f"filter {name}: created", err=True)


def _tracking_id(settings: ConnectorSettings) -> str:
    """The group's tracking id, creating the tracker when the group has none."""
    trackers = open_trackers(settings)
    group = settings.dataset_group
    found = [tracker for tracker in trackers.list() if tracker.group == group]
    if found:
        return found[0].tracking_id
    return trackers.create(group).tracking_id
