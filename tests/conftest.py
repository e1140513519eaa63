"""Shared test helpers. Unit tests need no servers; tests/integration starts or finds them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "examples"


def example(relative: str) -> Any:
    """The decoded JSON of a file under schemas/examples/."""
    return json.loads((EXAMPLES / relative).read_text())
