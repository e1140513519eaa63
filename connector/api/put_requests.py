"""Request bodies of PutEvents, PutItems and PutUsers, checked and turned into the records the
connector reads from the group's topics (docs/producing.md).

Pure: a decoded JSON body in, the records to publish out, or ApiRequestError naming the
field and the rule it breaks. What is checked here is what Personalize refuses before
accepting a request: the shapes, lengths and counts of its service model, the tracking id
and dataset ARN, and each event or entry against the dataset's registered schema (the same
row check the connector applies), so a client learns of a bad request from its answer
rather than from a dead letter. Whatever depends on stored state (duplicates, the budget of
event types, sessions) is left to the connector, as for records from any producer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from connector.api import ApiRequestError, aws
from connector.exceptions import InvalidEventError
from connector.ingest import limits
from connector.ingest.rows import interaction_row, metadata_row
from connector.registry.rules import DatasetSchema

MAX_ID = 256
MAX_EVENTS = 10  # eventList, items and users: Personalize takes 1 to 10 a request
_PRINTABLE = re.compile(r"[\x20-\x7E]*[\x21-\x7E][\x20-\x7E]*")
MAX_PROPERTIES = {"events": 1024, "items": 32_000, "users": 24_000}
_EVENT_FIELDS = (
    "eventId",
    "eventType",
    "eventValue",
    "itemId",
    "properties",
    "recommendationId",
    "impression",
    "metricAttribution",
)


@dataclass(frozen=True)
class Record:
    """One record to publish: its key (whose partition keeps its order) and JSON value."""

    key: bytes
    value: bytes


@dataclass(frozen=True)
class Accepted:
    """A checked request: its records, and how many events or entries they hold."""

    records: list[Record]
    count: int


def put_events(body: Any, tracking_id: str | None, schema: DatasetSchema) -> Accepted:
    """PutEvents: one record of the whole request, keyed by its user (else its session),
    with sentAt in whole epoch seconds; `tracking_id` is the group's tracker's, if any."""
    fields = _object(body, "the request body")
    tracking = _text(fields, "trackingId", MAX_ID, required=True)
    if tracking != tracking_id:
        raise ApiRequestError(f"trackingId {tracking!r} is not this dataset group's tracker")
    session = _text(fields, "sessionId", MAX_ID, required=True)
    user = _text(fields, "userId", MAX_ID)
    events = [
        _event(entry, f"eventList[{n}]", user or session, schema)
        for n, entry in enumerate(_list(fields, "eventList", MAX_EVENTS))
    ]
    envelope: dict[str, Any] = {"trackingId": tracking, "sessionId": session, "eventList": events}
    if user is not None:
        envelope["userId"] = user
    key = (user or session or "").encode()
    return Accepted([Record(key, orjson.dumps(envelope))], len(events))


def put_entries(body: Any, dataset: str, group: str, schema: DatasetSchema) -> Accepted:
    """PutItems (`dataset` "items") or PutUsers ("users"): one record per entry, keyed by
    its id, so that updates of one item or user stay in order."""
    fields = _object(body, "the request body")
    aws.dataset_of(fields.get("datasetArn"), "datasetArn", group, dataset)
    id_field = "itemId" if dataset == "items" else "userId"
    records = []
    for n, entry in enumerate(_list(fields, dataset, MAX_EVENTS)):
        checked = _entry(entry, f"{dataset}[{n}]", id_field, schema)
        record = orjson.dumps({dataset: [checked]})
        records.append(Record(checked[id_field].encode(), record))
    return Accepted(records, len(records))


def _event(value: Any, where: str, subject: str | None, schema: DatasetSchema) -> dict[str, Any]:
    event = _object(value, where)
    checked = {name: event[name] for name in _EVENT_FIELDS if event.get(name) is not None}
    checked["eventType"] = _text(event, "eventType", MAX_ID, True, where)
    checked["sentAt"] = aws.epoch_seconds(event.get("sentAt"), f"{where}.sentAt")
    for name, longest in (("eventId", MAX_ID), ("itemId", MAX_ID), ("recommendationId", 40)):
        _text(event, name, longest, False, where)
    _number(event, "eventValue", where)
    _strings(event, "impression", 25, MAX_ID, where)
    _attribution(event.get("metricAttribution"), f"{where}.metricAttribution")
    _properties(event, "events", where)
    _checked(where, lambda: _row(checked, subject, schema))
    return checked


def _row(event: dict[str, Any], subject: str | None, schema: DatasetSchema) -> object:
    """The connector's own checks of one event (size, ids, properties) and its row."""
    normalised = limits.check_event(event)
    return interaction_row(normalised, subject, normalised.get("impression"), schema)


def _entry(value: Any, where: str, id_field: str, schema: DatasetSchema) -> dict[str, Any]:
    entry = _object(value, where)
    checked = {id_field: _text(entry, id_field, MAX_ID, True, where)}
    properties = _properties(entry, schema.dataset, where)
    if properties is not None:
        checked["properties"] = properties
    _checked(where, lambda: metadata_row(checked[id_field], properties, schema))
    return checked


def _checked(where: str, row: Callable[[], object]) -> None:
    try:
        row()
    except InvalidEventError as exc:
        raise ApiRequestError(f"{where}: {exc}") from exc


def _properties(fields: dict[str, Any], dataset: str, where: str) -> Any:
    """`properties`: a JSON object, or (as the SDKs send it) a string of one, of at most
    Personalize's length."""
    value = fields.get("properties")
    if value is None:
        return None
    longest = MAX_PROPERTIES[dataset]
    text = value if isinstance(value, str) else None
    if text is None and isinstance(value, dict):
        text = orjson.dumps(value).decode()
    if text is None or not 1 <= len(text) <= longest:
        raise ApiRequestError(
            f"{where}.properties must be a JSON object (or a string of one) of 1 to {longest} "
            "characters"
        )
    return value


def _attribution(value: Any, where: str) -> None:
    if value is None:
        return
    source = _object(value, where).get("eventAttributionSource")
    if not isinstance(source, str) or len(source) > 1024 or not _PRINTABLE.fullmatch(source):
        raise ApiRequestError(
            f"{where}.eventAttributionSource must be printable ASCII of at most 1024 characters"
        )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiRequestError(f"{where} must be a JSON object")
    return value


def _text(
    fields: dict[str, Any], name: str, longest: int, required: bool = False, where: str = ""
) -> str | None:
    value = fields.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= longest:
        raise ApiRequestError(f"{_path(where, name)} must be a string of 1 to {longest} characters")
    return value


def _number(fields: dict[str, Any], name: str, where: str) -> None:
    value = fields.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ApiRequestError(f"{_path(where, name)} must be a number")


def _list(fields: dict[str, Any], name: str, most: int) -> list[Any]:
    value = fields.get(name)
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        raise ApiRequestError(f"{name} must be a list of 1 to {most} entries")
    return value


def _strings(fields: dict[str, Any], name: str, most: int, longest: int, where: str) -> None:
    value = fields.get(name)
    if value is None:
        return
    fits = isinstance(value, list) and 1 <= len(value) <= most
    if not fits or not all(isinstance(v, str) and 1 <= len(v) <= longest for v in value):
        raise ApiRequestError(
            f"{_path(where, name)} must be a list of 1 to {most} strings of 1 to {longest} "
            "characters"
        )


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
