"""`streamrec models`: the model versions published to Redis, and which one is served."""

from __future__ import annotations

import json

import click

from connector.cli.options import group_option
from connector.keys import Keys
from connector.redis_client import connect
from connector.stores.model_versions import ModelStore, VersionInfo
from worker.settings import WorkerSettings

# Shown by `list` when the version has them, in this order; otherwise its first three.
_HEADLINE_METRICS = ("ndcg@10", "hr@10", "mrr@25", "coverage")


@click.group()
def models() -> None:
    """Model versions: list them, show one, or serve an older one again.

    \b
    Example:
      streamrec models list --group shop
    """


@models.command(name="list")
@group_option
def list_versions(group: str | None) -> None:
    """List the versions in Redis, newest first; `*` marks the one being served.

    \b
    Example:
      streamrec models list
    """
    found = _store(group).versions()
    for info in found:
        click.echo(_line(info))
    if not found:
        click.echo("no model versions (publish one: streamrec train --mode full)")


@models.command()
@click.argument("version")
@group_option
def show(version: str, group: str | None) -> None:
    """Print a version's manifest and meta as JSON.

    \b
    Example:
      streamrec models show 20250101T120000.000000Z-3fa9c1
    """
    store = _store(group)
    manifest = json.loads(store.manifest(version).to_json())
    click.echo(json.dumps({"manifest": manifest, "meta": store.meta(version)}, indent=2))


@models.command()
@click.argument("version")
@group_option
def rollback(version: str, group: str | None) -> None:
    """Serve an older complete version again (readers reload at once).

    \b
    Example:
      streamrec models rollback 20250101T120000.000000Z-3fa9c1
    """
    store = _store(group)
    store.rollback(version)
    click.echo(f"now serving model version {version} in {store.group!r}")


def _store(group: str | None) -> ModelStore:
    """The model store of the dataset group of `--group` (or of the environment)."""
    settings = WorkerSettings(dataset_group=group) if group else WorkerSettings()
    return ModelStore(connect(settings), Keys(settings.dataset_group))


def _line(info: VersionInfo) -> str:
    """One version as a line: marker, id, creation time, item count, state, metrics."""
    marker = "*" if info.current else " "
    state = "complete" if info.complete else "incomplete"
    metrics = "  ".join(f"{name}={value:.4f}" for name, value in _headline(info.metrics))
    created = info.created.strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{marker} {info.version}  {created}  {info.items} items  {state}  {metrics}".rstrip()


def _headline(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The few metrics worth a glance."""
    chosen = [name for name in _HEADLINE_METRICS if name in metrics] or sorted(metrics)[:3]
    return [(name, metrics[name]) for name in chosen]
