"""The table of every STREAMREC_* setting, generated from the settings classes themselves.

docs/configuration.md is this output; a test regenerates it and fails when they differ, so
the documentation cannot drift from the code.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from pydantic_settings import BaseSettings

from connector.settings import ENV_PREFIX

_HEADER = """# Configuration

Every setting is read from an environment variable; nothing else in streamrec reads the
environment. Settings are validated at start-up and frozen. Passwords (`SecretStr`) are never
printed or logged. Topic names may contain `{group}`, replaced by the dataset group.

Regenerate this file with `streamrec config docs > docs/configuration.md`; a test fails when
it is out of date.
"""


def settings_classes() -> list[type[BaseSettings]]:
    """Every deployable's settings class, as registered under `streamrec.settings`, bases
    before the classes built on them (so each field is listed with the class that adds it)."""
    classes = [entry.load() for entry in entry_points(group="streamrec.settings")]
    return sorted(classes, key=lambda cls: (len(cls.__mro__), cls.__name__))


def render(classes: list[type[BaseSettings]]) -> str:
    """Markdown: one table per class, listing only the fields it adds to its bases."""
    parts, seen = [_HEADER], set[str]()
    for cls in classes:
        rows = [(name, field) for name, field in cls.model_fields.items() if name not in seen]
        seen.update(name for name, _ in rows)
        parts.append(f"\n## {cls.__name__}\n\n{(cls.__doc__ or '').strip()}\n")
        parts.append("| variable | default | meaning |\n|---|---|---|")
        parts.extend(
            f"| `{ENV_PREFIX}{name.upper()}` | `{field.default}` | {field.description} |"
            for name, field in rows
        )
    return "\n".join(parts) + "\n"
