"""The schema registry, stored in a real compacted Kafka topic."""

from __future__ import annotations

import threading

import pytest

from connector.exceptions import IncompatibleSchemaError, SchemaNotFoundError, SchemaRuleError
from connector.registry.registry import open_registry
from connector.registry.schema import SchemaRegistry
from connector.settings import CommonSettings
from tests.conftest import example

pytestmark = pytest.mark.single_redis  # Kafka only

EVOLUTION = example("evolution/expected.json")


def test_reference_example_is_registered_and_read_back(settings: CommonSettings) -> None:
    registry = open_registry(settings)
    schema = example("valid/interactions-reference.json")
    entry = registry.register(settings.dataset_group, "interactions", schema)
    assert (entry.version, entry.schema) == (1, schema)
    fresh = open_registry(settings)  # a new process: everything comes from the topic
    again = fresh.get(settings.dataset_group, "interactions")
    assert (again.id, again.version, again.schema) == (entry.id, 1, schema)
    assert fresh.by_id(entry.id).schema == schema


def test_versions_list_and_get(settings: CommonSettings) -> None:
    registry, group = open_registry(settings), settings.dataset_group
    base = registry.register(group, "interactions", example("evolution/base.json"))
    wider = registry.register(group, "interactions", example("evolution/added-nullable-field.json"))
    items = registry.register(group, "items", example("valid/items-100-metadata.json"))
    assert [(e.dataset, e.version) for e in open_registry(settings).list(group)] == [
        ("interactions", 1),
        ("interactions", 2),
        ("items", 1),
    ]
    assert registry.get(group, "interactions", 1).id == base.id
    assert registry.get(group, "interactions").id == wider.id
    assert len({base.id, wider.id, items.id}) == 3


def test_registering_the_same_schema_again_changes_nothing(settings: CommonSettings) -> None:
    registry, group = open_registry(settings), settings.dataset_group
    first = registry.register(group, "users", example("valid/users-25-metadata.json"))
    second = open_registry(settings).register(
        group, "users", example("valid/users-25-metadata.json")
    )
    assert second.id == first.id and len(registry.list(group)) == 1


@pytest.mark.parametrize("name", sorted(EVOLUTION["incompatible"]))
def test_incompatible_new_version_is_refused(settings: CommonSettings, name: str) -> None:
    registry, group = open_registry(settings), settings.dataset_group
    registry.register(group, "interactions", example("evolution/base.json"))
    with pytest.raises(IncompatibleSchemaError) as refused:
        registry.register(group, "interactions", example(f"evolution/{name}"))
    assert str(refused.value) == EVOLUTION["incompatible"][name]
    assert [e.version for e in open_registry(settings).list(group)] == [1]


def test_rule_violation_is_refused_before_anything_is_stored(settings: CommonSettings) -> None:
    registry = open_registry(settings)
    with pytest.raises(SchemaRuleError, match="USER_ID is required and cannot be nullable"):
        registry.register(
            settings.dataset_group,
            "interactions",
            example("invalid/interactions-user-id-nullable.json"),
        )
    assert registry.list(settings.dataset_group) == []


def test_groups_are_separate_namespaces(settings: CommonSettings) -> None:
    registry = open_registry(settings)
    registry.register(settings.dataset_group, "interactions", example("evolution/base.json"))
    with pytest.raises(SchemaNotFoundError, match="no interactions schema is registered"):
        registry.get(f"{settings.dataset_group}-other", "interactions")
    with pytest.raises(SchemaNotFoundError, match="has versions 1-1, not 2"):
        registry.get(settings.dataset_group, "interactions", 2)


def test_concurrent_registrations_get_distinct_versions(settings: CommonSettings) -> None:
    """Two registrars at once: the transactional fence serialises them, none is lost."""
    group, files = (
        settings.dataset_group,
        ["evolution/base.json", "evolution/added-nullable-field.json"],
    )
    open_registry(settings).register(group, "interactions", example(files[0]))
    results: list[object] = []

    def register(dataset: str, file: str) -> None:
        registry: SchemaRegistry = open_registry(settings)
        for _ in range(5):
            try:
                results.append(registry.register(group, dataset, example(file)).version)
                return
            except Exception as exc:  # noqa: BLE001 - a fenced writer retries
                results.append(type(exc).__name__)
        results.append("gave up")

    threads = [
        threading.Thread(target=register, args=("interactions", files[1])),
        threading.Thread(target=register, args=("users", "valid/users-25-metadata.json")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    versions = [(e.dataset, e.version) for e in open_registry(settings).list(group)]
    assert versions == [("interactions", 1), ("interactions", 2), ("users", 1)], results
