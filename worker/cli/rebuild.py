"""`streamrec rebuild`: restore a dataset group's Redis state from its datasets in Kafka."""

from __future__ import annotations

import click
import redis

from connector.cli.options import group_option
from connector.settings import ConnectorSettings
from worker.data.rebuild import Rebuilder


@click.command()
@group_option
def rebuild(group: str | None) -> None:
    """Restore session histories, dedup markers, stitches, counters, precomputed lists and
    item/user hashes from the Interactions, Items and Users datasets, e.g. after Redis lost
    its data. Safe to run twice, or while the connector runs: what Redis already holds is
    left as it is. Lists need a published model (run `streamrec train` first if Redis lost
    the models too).

    \b
    Example:
      streamrec -v rebuild --group shop
    """
    settings = ConnectorSettings(dataset_group=group) if group else ConnectorSettings()
    try:
        report = Rebuilder(settings, say=lambda line: click.echo(line, err=True)).run()
    except redis.RedisError as exc:
        raise click.ClickException(
            f"Redis failed during the rebuild ({exc}); run it again"
        ) from exc
    click.echo(f"rebuilt {settings.dataset_group!r}: {report.summary()}")
