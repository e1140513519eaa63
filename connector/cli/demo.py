"""`streamrec demo`: the README's main command."""

from __future__ import annotations

import click

from connector import demo as demo_steps
from connector.devservices.settings import DevSettings
from connector.settings import CommonSettings


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave local Kafka and Redis running.")
def demo(keep_running: bool) -> None:
    """Run streamrec end to end on local defaults: start Kafka and Redis when none answers,
    register the example schemas, publish example events and show how each was validated.

    \b
    Example:
      streamrec demo --keep-running
    """
    outcomes = demo_steps.run(CommonSettings(), DevSettings(), click.echo, keep_running)
    if not any(outcome.reason is None for outcome in outcomes):
        raise click.ClickException("no example event was validated")
