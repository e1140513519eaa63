"""Options shared by several `streamrec` commands."""

from __future__ import annotations

import click

from connector.settings import CommonSettings

group_option = click.option("--group", help="Dataset group (default: STREAMREC_DATASET_GROUP).")


def settings_for(group: str | None) -> CommonSettings:
    """Settings from the environment, with the dataset group of `--group` when given."""
    return CommonSettings(dataset_group=group) if group else CommonSettings()
