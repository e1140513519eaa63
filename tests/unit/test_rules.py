"""Personalize's schema rules: every rule has an invalid example with its exact message."""

from __future__ import annotations

import pytest

from connector.exceptions import SchemaRuleError
from connector.registry.rules import check_schema
from tests.conftest import EXAMPLES, example

INVALID = example("invalid/expected.json")
VALID = sorted(path.name for path in (EXAMPLES / "valid").glob("*.json"))


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_schema_is_refused_with_its_reason(name: str) -> None:
    case = INVALID[name]
    with pytest.raises(SchemaRuleError) as refused:
        check_schema(case["dataset"], example(f"invalid/{name}"))
    assert str(refused.value) == case["error"]


def test_every_invalid_example_is_listed() -> None:
    files = {path.name for path in (EXAMPLES / "invalid").glob("*.json")} - {"expected.json"}
    assert files == set(INVALID)


@pytest.mark.parametrize("name", VALID)
def test_valid_schema_is_accepted(name: str) -> None:
    dataset = name.split("-", 1)[0]
    assert check_schema(dataset, example(f"valid/{name}")).dataset == dataset


def test_reference_interactions_example_is_accepted_as_is() -> None:
    schema = check_schema("interactions", example("valid/interactions-reference.json"))
    assert [spec.name for spec in schema.metadata_fields] == ["LOCATION", "DEVICE"]
    device = schema.field("DEVICE")
    assert device is not None and device.nullable and device.categorical
    # EVENT_TYPE, EVENT_VALUE, LOCATION, DEVICE take 4 of the 10 slots: 6 event types remain.
    assert schema.event_type_budget == 6


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(SchemaRuleError, match="unknown dataset 'clicks'"):
        check_schema("clicks", example("valid/interactions-minimal.json"))


def test_minimal_interactions_schema_leaves_ten_event_types() -> None:
    assert (
        check_schema("interactions", example("valid/interactions-minimal.json")).event_type_budget
        == 10
    )
