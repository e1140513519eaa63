"""The `streamrec` command. Subcommands come from the `streamrec.commands` entry points, so
each deployable adds its own without the CLI importing packages it does not own."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import click

from connector import logs
from connector.exceptions import StreamrecError


class _Group(click.Group):
    """Turns streamrec's own errors into `Error: <what to do>` on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StreamrecError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress and info, not only warnings.")
def cli(verbose: bool) -> None:
    """streamrec: Kafka-native real-time recommendations, served from Redis.

    \b
    Example:
      streamrec dev up && streamrec demo
    """
    logs.configure(verbose)


def main() -> None:
    """Entry point of the `streamrec` console script."""
    for entry in entry_points(group="streamrec.commands"):
        cli.add_command(entry.load(), entry.name)
    cli(prog_name="streamrec")
