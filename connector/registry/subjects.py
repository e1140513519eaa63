"""Schema Registry subjects and what they name in streamrec's registry.

A Confluent serializer registers its schema under a subject before it writes (by default
`<topic>-value`) and puts the returned id in each record. Two kinds of subject are known:

- `<events topic>-value` (e.g. `shop.events-value`): writer schemas of the group's PutEvents
  records, each readable as the group's PutEvents envelope by Avro schema resolution;
- `<group>-<dataset>-value` for interactions, items, users and putevents: the dataset
  schemas themselves, checked against Personalize's rules as `streamrec schemas register`
  checks them;
- `<source topic>-value` for each source of the group in Avro (docs/sources.md): writer
  schemas of an existing topic, checked against the source's mapping by the caller (the
  API's registry routes), since a source's record has no dataset schema to be read as.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from connector.exceptions import SchemaNotFoundError
from connector.registry.schema import ENVELOPE, RegisteredSchema

DATASETS = ("interactions", "items", "users", ENVELOPE)
SUFFIX = "-value"
SOURCE = "source"  # the dataset name writer schemas of a source's topic are kept under


@dataclass(frozen=True)
class Subject:
    """A subject of one dataset group: the dataset it holds schemas for, and whether they
    are producers' writer schemas or the dataset's own versions."""

    name: str
    group: str
    dataset: str
    writer: bool


def dataset_subject(group: str, dataset: str) -> str:
    """The subject of a dataset's own schema versions."""
    return f"{group}-{dataset}{SUFFIX}"


def subject_of(entry: RegisteredSchema) -> str:
    """The subject a registered schema is listed under."""
    return entry.subject or dataset_subject(entry.group, entry.dataset)


def resolve(
    name: str, group: str, events_topic: str, source_topics: Collection[str] = ()
) -> Subject:
    """The subject `name` in dataset group `group`, whose PutEvents topic is `events_topic`
    and whose Avro sources read `source_topics`; SchemaNotFoundError (listing the known
    subjects) for any other name."""
    if name == f"{events_topic}{SUFFIX}":
        return Subject(name, group, ENVELOPE, writer=True)
    for dataset in DATASETS:
        if name == dataset_subject(group, dataset):
            return Subject(name, group, dataset, writer=False)
    if name.endswith(SUFFIX) and name[: -len(SUFFIX)] in source_topics:
        return Subject(name, group, SOURCE, writer=True)
    known = [
        f"{events_topic}{SUFFIX}",
        *(dataset_subject(group, d) for d in DATASETS),
        *(f"{topic}{SUFFIX}" for topic in sorted(source_topics)),
    ]
    raise SchemaNotFoundError(
        f"subject {name!r} is not one of dataset group {group!r}: {', '.join(known)}"
    )
