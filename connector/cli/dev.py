"""`streamrec dev`: local Kafka and Redis for development, without Docker."""

from __future__ import annotations

import click

from connector.devservices.local import LocalServices
from connector.devservices.settings import DevSettings
from connector.settings import CommonSettings


def _services() -> LocalServices:
    return LocalServices(DevSettings(), CommonSettings())


@click.group()
def dev() -> None:
    """Start, check and stop a local Kafka broker (KRaft) and redis-server.

    \b
    Example:
      streamrec dev up && streamrec dev status && streamrec dev down
    """


@dev.command()
def up() -> None:
    """Start Kafka and Redis on the ports of STREAMREC_KAFKA_BOOTSTRAP and STREAMREC_REDIS_URL
    (127.0.0.1:9092 and 6379 by default) and wait until both answer.

    Starts only what does not answer: a service that answers is never stopped, whether this
    folder started it (it is kept) or not (it is used and left alone; `down` does not stop it).

    \b
    Example:
      STREAMREC_KAFKA_BOOTSTRAP=127.0.0.1:19092 streamrec dev up
    """
    services = _services()
    result = services.up()
    for state in result.started:
        click.echo(f"{state.name:<6} pid {state.pid:<8} {state.address:<28} started")
    for state in result.kept:
        click.echo(f"{state.name:<6} pid {state.pid:<8} {state.address:<28} already answering")
    for name in result.elsewhere:
        click.echo(f"{name:<6} answers at the configured address, not started here; left alone")
    click.echo("\n".join(services.env_lines()))


@dev.command()
def down() -> None:
    """Stop the services `dev up` started (their data stays for the next `dev up`).

    \b
    Example:
      streamrec dev down
    """
    stopped = _services().down()
    click.echo(", ".join(f"stopped {s.name} (pid {s.pid})" for s in stopped) or "nothing runs")


@dev.command()
def status() -> None:
    """Say which local services run and answer; exit status 1 if any does not.

    \b
    Example:
      streamrec dev status
    """
    states = _services().status()
    if not states:
        click.echo("no local services (run: streamrec dev up)")
    healthy = True
    for state in states:
        running = state.running
        answering = running and state.answering
        healthy = healthy and answering
        word = "answering" if answering else ("running, not answering" if running else "stopped")
        click.echo(f"{state.name:<6} pid {state.pid:<8} {state.address:<28} {word}")
    if not states or not healthy:
        raise SystemExit(1)


@dev.command()
def env() -> None:
    """Print shell exports that point streamrec at the local services.

    \b
    Example:
      eval "$(streamrec dev env)"
    """
    click.echo("\n".join(_services().env_lines()))
