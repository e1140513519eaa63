"""The `streamrec` command. Subcommands come from the `streamrec.commands` entry points, so
each deployable adds its own without the CLI importing packages it does not own. A command is
imported only when it runs, so a lean install (docs/install.md) runs the commands it has and
names the extra a missing one needs."""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import click

from connector import logs
from connector.exceptions import StreamrecError

OWN_PACKAGES = ("connector", "worker", "schemas")


def extra_for(entry: EntryPoint) -> str:
    """The install extra (pyproject.toml) that brings a command's dependencies."""
    return "worker" if entry.module.startswith("worker.") else "connector"


def missing_extra_command(name: str, missing: str, extra: str) -> click.Command:
    """A stand-in for a command whose dependencies are not installed: it says which extra
    to install, for `--help` too, and exits 1."""

    def refuse() -> None:
        raise click.ClickException(
            f"`streamrec {name}` needs {missing}, which this install leaves out: "
            f"pip install 'streamrec[{extra}]'"
        )

    return click.Command(
        name,
        callback=refuse,
        help=f"(not installed: pip install 'streamrec[{extra}]')",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def load_command(entry: EntryPoint) -> click.Command:
    """The entry point's command, or a stand-in when a third-party module it imports is
    missing; a missing module of streamrec itself is a bug and is raised."""
    try:
        command: click.Command = entry.load()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if not missing or missing in OWN_PACKAGES:
            raise
        return missing_extra_command(entry.name, missing, extra_for(entry))
    return command


class _Group(click.Group):
    """Loads subcommands from their entry points when asked for, and turns streamrec's own
    errors into `Error: <what to do>` on stderr and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_entries()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        entry = _entries().get(cmd_name)
        if command is None and entry is not None:
            command = load_command(entry)
            self.add_command(command, cmd_name)
        return command

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


@functools.cache
def _entries() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group="streamrec.commands")}


def main() -> None:
    """Entry point of the `streamrec` console script."""
    cli(prog_name="streamrec")
