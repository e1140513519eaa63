"""`streamrec metrics`: events per type and per attribution source, by time bucket."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from connector import redis_client
from connector.keys import Keys
from connector.settings import ConnectorSettings
from connector.stores.counters import recent_buckets


@click.command()
@click.option("--last", default=10, show_default=True, help="How many recent buckets.")
@click.option("--as-json", is_flag=True, help="One JSON object per bucket instead of a table.")
def metrics(last: int, as_json: bool) -> None:
    """Event counts by event type and by attribution source (eventAttributionSource, else the
    source behind the recommendationId, else SOURCE_NAME_UNDEFINED), per time bucket of event
    time (STREAMREC_METRICS_BUCKET_SECONDS wide).

    \b
    Example:
      streamrec metrics --last 5
    """
    settings = ConnectorSettings()
    client = redis_client.connect(settings)
    buckets = recent_buckets(client, Keys(settings.dataset_group), last)
    if not buckets:
        click.echo(f"no events counted yet in dataset group {settings.dataset_group!r}")
    for counts in buckets:
        if as_json:
            click.echo(json.dumps(counts.__dict__))
            continue
        start = datetime.fromtimestamp(counts.bucket, UTC).strftime("%Y-%m-%d %H:%M:%S")
        types = ", ".join(f"{name}={n}" for name, n in counts.by_type.items())
        sources = ", ".join(f"{name}={n}" for name, n in counts.by_source.items())
        click.echo(f"{start}  types: {types}  sources: {sources}")
