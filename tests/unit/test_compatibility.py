"""A new schema version must hold every record the previous version accepted."""

from __future__ import annotations

import pytest

from connector.exceptions import IncompatibleSchemaError
from connector.registry.compatibility import check_compatible
from connector.registry.rules import check_schema
from tests.conftest import example

EXPECTED = example("evolution/expected.json")
BASE = check_schema(EXPECTED["dataset"], example(f"evolution/{EXPECTED['base']}"))


@pytest.mark.parametrize("name", sorted(EXPECTED["incompatible"]))
def test_incompatible_version_is_refused_with_its_reason(name: str) -> None:
    candidate = check_schema(EXPECTED["dataset"], example(f"evolution/{name}"))
    with pytest.raises(IncompatibleSchemaError) as refused:
        check_compatible(BASE, candidate, version=1)
    assert str(refused.value) == EXPECTED["incompatible"][name]


@pytest.mark.parametrize("name", EXPECTED["compatible"])
def test_compatible_version_is_accepted(name: str) -> None:
    check_compatible(BASE, check_schema(EXPECTED["dataset"], example(f"evolution/{name}")), 1)
