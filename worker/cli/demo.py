"""`streamrec demo`: the README's main command, from nothing to live recommendations.

It lives in the worker because it trains a model; the steps are in worker/demo/run.py.
"""

from __future__ import annotations

import click

from connector.cli.options import group_option
from connector.devservices.settings import DevSettings
from connector.settings import ConnectorSettings
from worker.demo.processes import stop_kept
from worker.demo.run import DemoOptions, run

_DEFAULTS = DemoOptions()
_FULL = {"max_interactions": 0, "replay_events": 5_000, "replay_seconds": 120.0, "epochs": 20}


@click.command()
@group_option
@click.option(
    "--max-interactions",
    type=click.IntRange(min=0),
    default=_DEFAULTS.max_interactions,
    show_default=True,
    help="Use the earliest N ratings of MovieLens-100K (0: all 100,000).",
)
@click.option(
    "--replay-events",
    type=click.IntRange(min=0),
    default=_DEFAULTS.replay_events,
    show_default=True,
    help="The latest N of those ratings are held back and replayed live.",
)
@click.option(
    "--replay-seconds",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.replay_seconds,
    show_default=True,
    help="How long the live replay lasts (wall-clock seconds).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    help="Event-time seconds replayed per second (default: fit the held-back slice into "
    "--replay-seconds).",
)
@click.option(
    "--users", default=_DEFAULTS.users, show_default=True, help="Users whose lists are shown."
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=_DEFAULTS.epochs,
    show_default=True,
    help="Most training epochs of the FULL run.",
)
@click.option(
    "--api-port",
    type=click.IntRange(0, 65535),
    default=_DEFAULTS.api_port,
    show_default=True,
    help="Port of the HTTP API (a free one when this one is taken).",
)
@click.option(
    "--full", is_flag=True, help="All of MovieLens-100K, 5,000 events replayed over 2 minutes."
)
@click.option("--generated", is_flag=True, help="Use generated data instead of MovieLens.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="Leave Kafka, Redis, the connector, the API and the worker running afterwards.",
)
@click.option("--stop", is_flag=True, help="Stop what an earlier --keep-running left up.")
def demo(group: str | None, full: bool, stop: bool, **options: object) -> None:
    """Run streamrec end to end on local defaults: start Kafka and Redis when none answers,
    create a dataset group (schemas, tracker, filters), validate example events, import
    MovieLens-100K through the topics, train and publish a model, start the connector, the
    API and the worker, replay held-back ratings live, and show users' recommendations
    before and after their new events. Ctrl-C stops everything it started.

    \b
    Examples:
      streamrec demo                        # a 20,000-rating slice, ~2-3 minutes
      streamrec demo --full --keep-running  # all of MovieLens, then keep serving
      streamrec demo --stop                 # stop what --keep-running left up
    """
    settings = ConnectorSettings(dataset_group=group) if group else ConnectorSettings()
    dev = DevSettings()
    if stop:
        stopped = stop_kept(dev, settings)
        click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")
        return
    values = {**options, **(_FULL if full else {})}
    try:
        run(DemoOptions(**values), settings, dev, click.echo)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        click.echo("\ninterrupted: stopped everything the demo started", err=True)
        raise SystemExit(130) from None
