"""Every `streamrec` command and subcommand shows an example in its `--help` (issue 8's CLI
polish), so a command added without one fails here.

The commands are the `streamrec.commands` entry points of pyproject.toml (what `main()`
discovers once installed), read from the file so a command added there counts before any
reinstall. The help texts mark examples as a `\\b` paragraph headed `Example:` or
`Examples:`, whose indented lines run the command itself (`streamrec [-v] <path> ...`).
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from connector.cli import cli

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_HEADING = re.compile(r"^(\s*)Examples?:$")
_WORD = re.compile(r"[^\s\"'$()|;&]+")  # a shell word without quotes, $( ) and operators


def entry_point_commands() -> dict[str, click.Command]:
    """name -> command, loaded from pyproject.toml's `streamrec.commands` entry points."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = {}
    for name, target in project["entry-points"]["streamrec.commands"].items():
        module, attribute = target.split(":")
        found[name] = getattr(importlib.import_module(module), attribute)
    return found


def root() -> click.Group:
    """`streamrec` with every entry-point command, as `main()` assembles it (on a copy)."""
    group = click.Group(
        cli.name,
        commands=entry_point_commands(),
        callback=cli.callback,
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
    )
    return group


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of `command` and of every subcommand below it."""
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


def examples(help_text: str) -> list[str]:
    """The lines of the description's Example(s) paragraphs (not of the options below)."""
    description = help_text.split("\nOptions:", 1)[0]
    found, indent = [], None
    for line in description.splitlines():
        heading = _HEADING.match(line)
        if heading:
            indent = len(heading.group(1))
        elif indent is not None and line.strip() and len(line) - len(line.lstrip()) > indent:
            found.append(line.strip())
        else:
            indent = None
    return found


def runs(example: str, path: tuple[str, ...]) -> bool:
    """Whether `example` runs `streamrec <path>` (flags such as -v may come in between; the
    command may sit inside `$(...)` or quotes)."""
    words = _WORD.findall(example)
    for start, word in enumerate(words):
        if word == "streamrec":
            rest = [w for w in words[start + 1 :] if not w.startswith("-")]
            if tuple(rest[: len(path)]) == path:
                return True
    return False


COMMANDS = list(walk(root()))


def test_the_walk_finds_every_entry_point_and_subcommands() -> None:
    tops = {path[0] for path in COMMANDS if len(path) == 1}
    assert tops == set(entry_point_commands())
    assert ("schemas", "register") in COMMANDS and ("models", "rollback") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(("streamrec", *path)))
def test_help_shows_an_example_of_the_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(root(), [*path, "--help"], prog_name="streamrec")
    assert result.exit_code == 0, result.output
    shown = examples(result.output)
    assert shown, f"no Example: paragraph in:\n{result.output}"
    assert any(runs(line, path) for line in shown), f"no example runs it: {shown}"


def test_a_command_without_an_example_is_caught() -> None:
    @click.command()
    def bare() -> None:
        """Does something; see Options below. Example usage is left out."""

    text = CliRunner().invoke(bare, ["--help"], prog_name="streamrec bare").output
    assert examples(text) == []
    assert not runs("streamrec demo --stop", ("bare",))
    assert runs("STREAMREC_X=1 streamrec -v train --mode full", ("train",))
    assert runs('eval "$(streamrec dev env)"', ("dev", "env"))
