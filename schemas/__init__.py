"""The Avro contracts of streamrec: dataset schemas, the event envelope, and example files.

Python code finds them through `path()`, so they work both from a checkout and installed.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

DATASET_FILES = {"interactions": "interactions.avsc", "users": "users.avsc", "items": "items.avsc"}
ENVELOPE_FILE = "events.avsc"


def path(name: str) -> Traversable:
    """A file of this folder, e.g. path('interactions.avsc') or path('examples/valid/x.json')."""
    return resources.files(__name__).joinpath(name)


def load(name: str) -> Any:
    """The decoded JSON of a file of this folder."""
    return json.loads(path(name).read_text())
