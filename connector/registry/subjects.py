"""Schema Registry subjects and what they name in streamrec's registry.

A Confluent serializer registers its schema under a subject before it writes (by default
`<topic>-value`) and puts the returned id in each record. Two kinds of subject are known:

- `<events topic>-value` (e.g. `shop.events-value`): writer schemas of the group's PutEvents
  records, each readable as the group's PutEvents envelope by Avro schema resolution;
- `<group>-<dataset>-value` for interactions, items, users and putevents: the dataset
  schemas themselves, checked against Personalize's rules as `streamrec schemas register`
  checks them.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.exceptions import SchemaNotFoundError
from connector.registry.schema import ENVELOPE, RegisteredSchema

DATASETS = ("interactions", "items", "users", ENVELOPE)
SUFFIX = "-value"


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


def resolve(name: str, group: str, events_topic: str) -> Subject:
    """The subject `name` in dataset group `group`, whose PutEvents topic is `events_topic`;
    SchemaNotFoundError (listing the known subjects) for any other name."""
    if name == f"{events_topic}{SUFFIX}":
        return Subject(name, group, ENVELOPE, writer=True)
    for dataset in DATASETS:
        if name == dataset_subject(group, dataset):
            return Subject(name, group, dataset, writer=False)
    known = [f"{events_topic}{SUFFIX}", *(dataset_subject(group, d) for d in DATASETS)]
    raise SchemaNotFoundError(
        f"subject {name!r} is not one of dataset group {group!r}: {', '.join(known)}"
    )
