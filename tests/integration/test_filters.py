"""Named filters end to end: created, listed and deleted through the real `streamrec filters`
command against the real broker, then applied to metadata and histories that the connector's
own processors wrote to the real Redis."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import redis

from connector.exceptions import FilterError, FilterNotFoundError
from connector.filters import store as store_module
from connector.filters.evaluate import item_mask
from connector.filters.store import FilterStore, open_filters
from connector.kafka_log import LogRecord
from connector.keys import Keys, Subject
from connector.model.history import parse_member
from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.stores.catalog import load_item_table, user_metadata
from connector.wiring import processors
from tests.integration.helpers import prepare_group, put_events

CATALOGUE = ["m1", "m2", "m3", "m4", "m5", "gone"]  # "gone" has no metadata hash
ITEMS = [
    {"itemId": "m1", "properties": {"genres": "Comedy|Drama", "creationTimestamp": 1_500_000_000}},
    {"itemId": "m2", "properties": {"genres": "Drama", "creationTimestamp": 1_700_000_000}},
    {"itemId": "m3", "properties": {"genres": "Action", "creationTimestamp": 1_650_000_000}},
    {"itemId": "m4", "properties": {"genres": "Comedy"}},
    {"itemId": "m5", "properties": {"title": "no genre", "creationTimestamp": 1_690_000_000}},
]
USERS = [
    {"userId": "adult", "properties": {"age": 31, "gender": "F"}},
    {"userId": "teen", "properties": {"age": 15, "gender": "M"}},
]
UNSEEN = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", "purchase")'
BY_GENRE = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES)"
ADULT_NEW = "INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > 1600000000 IF CurrentUser.AGE > 18"


def streamrec(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "filters", *args], env=env, capture_output=True, text=True, timeout=120
    )


def ingest(settings: ConnectorSettings) -> None:
    """Items, users and u-adult's events through the connector's own processors."""
    tracking_id = prepare_group(settings)
    found = processors(settings)

    def records(topic: str, values: list[bytes]) -> list[SourceRecord]:
        return [SourceRecord(topic, 0, n, b"k", value) for n, value in enumerate(values)]

    topics = settings.topics
    found.items.process(records(topics.items, [json.dumps({"items": ITEMS}).encode()]))
    found.users.process(records(topics.users, [json.dumps({"users": USERS}).encode()]))
    events = [
        {"eventType": "click", "itemId": "m1", "sentAt": 1_700_000_001},
        {"eventType": "Purchase", "itemId": "m3", "sentAt": 1_700_000_002},
        {"eventType": "view", "itemId": "m2", "sentAt": 1_700_000_003},
    ]
    report = found.events.process(
        records(topics.events, [put_events(tracking_id, "s1", events, user="adult")])
    )
    assert report.dead == 0


def kept(mask: list[bool]) -> list[str]:
    return [item for item, keep in zip(CATALOGUE, mask, strict=True) if keep]


def test_filters_from_the_cli_apply_to_connector_data(
    settings: ConnectorSettings, service_env: dict[str, str], redis_db: redis.Redis
) -> None:
    ingest(settings)
    outputs = {}
    for name, expression in [("unseen", UNSEEN), ("by-genre", BY_GENRE), ("adult-new", ADULT_NEW)]:
        created = streamrec(["create", name, expression], service_env)
        assert created.returncode == 0, created.stderr
        outputs[name] = created.stdout
    assert outputs["by-genre"].startswith("created filter 'by-genre' in dataset group")
    assert outputs["by-genre"].rstrip().endswith("(parameters: GENRES)")

    keys = Keys(settings.dataset_group)
    table = load_item_table(redis_db, keys, CATALOGUE, batch=2)
    members = redis_db.zrange(keys.history(Subject("u", "adult")), 0, -1)
    history = [parse_member(member) for member in members]
    adult, teen = user_metadata(redis_db, keys, "adult"), user_metadata(redis_db, keys, "teen")
    assert adult == {"USER_ID": "adult", "AGE": "31", "GENDER": "F"}
    store = open_filters(settings)

    def mask(name: str, user: dict[str, str], values: dict[str, str] | None = None) -> list[str]:
        return kept(item_mask(store.get(name), table, user, history, values).tolist())

    assert mask("unseen", adult) == ["m2", "m4", "m5", "gone"]
    assert mask("by-genre", adult, {"GENRES": '"Comedy"'}) == ["m1", "m4"]
    assert mask("by-genre", adult, {"GENRES": '"Drama","Action"'}) == ["m1", "m2", "m3"]
    assert mask("adult-new", adult) == ["m2", "m3", "m5"]
    assert mask("adult-new", teen) == CATALOGUE  # IF is false: the expression does not apply
    assert user_metadata(redis_db, keys, "nobody") == {}


def test_cli_refuses_malformed_expressions_and_name_clashes(
    settings: ConnectorSettings, service_env: dict[str, str]
) -> None:
    malformed = streamrec(
        ["create", "bad", 'EXCLUDE ItemID WHERE Items.GENRE LIKE ("x")'], service_env
    )
    assert malformed.returncode == 1
    assert malformed.stderr.strip() == (
        "Error: position 34: expected IN, NOT IN or a comparison operator"
    )
    assert streamrec(["create", "once", UNSEEN], service_env).returncode == 0
    again = streamrec(["create", "once", BY_GENRE], service_env)
    assert again.returncode == 1 and "already has a filter 'once'" in again.stderr
    listed = streamrec(["list"], service_env)
    assert listed.stdout.splitlines() == [f"once  {UNSEEN}"]
    with pytest.raises(FilterNotFoundError):
        open_filters(settings).get("bad")
    with pytest.raises(FilterError, match="filter name"):
        open_filters(settings).create("-x", UNSEEN)


def test_deleted_filters_are_gone_and_other_groups_unaffected(
    settings: ConnectorSettings, service_env: dict[str, str]
) -> None:
    store = open_filters(settings)
    store.create("temp", BY_GENRE)
    other = open_filters(
        settings.model_copy(update={"dataset_group": f"{settings.dataset_group}x"})
    )
    other.create("temp", UNSEEN)
    assert store.get("temp").text == BY_GENRE
    deleted = streamrec(["delete", "temp"], service_env)
    assert deleted.returncode == 0, deleted.stderr
    store.reread()
    with pytest.raises(FilterNotFoundError, match="has no filter 'temp'"):
        store.get("temp")
    assert open_filters(settings).list() == []
    assert other.get("temp").text == UNSEEN
    other.delete("temp")
    missing = streamrec(["delete", "temp"], service_env)
    assert missing.returncode == 1 and "has no filter 'temp'" in missing.stderr


class _RecordedLog:
    """Stands in for the compacted topic: the records a reader would get."""

    def __init__(self, records: list[LogRecord]) -> None:
        self.records = records

    def read_from(self, start: int) -> list[LogRecord]:
        return [record for record in self.records if record.offset >= start]


def test_a_stored_filter_that_no_longer_parses_does_not_hide_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_module, "_UNSEEN_NAME_REREAD_SECONDS", 0.0)

    def value(expression: str) -> bytes:
        return json.dumps({"expression": expression, "created": 1.0}).encode()

    log = _RecordedLog(
        [
            LogRecord(0, "g/a", value(UNSEEN)),
            LogRecord(1, "g/b", value("INCLUDE ItemID WHERE Items.X LIKE 3")),
            LogRecord(2, "h/c", value(BY_GENRE)),
            LogRecord(3, "g/d", value(BY_GENRE)),
            LogRecord(4, "g/d", None),
        ]
    )
    store = FilterStore(log, "g")
    assert [named.name for named in store.list()] == ["a"]
    with pytest.raises(FilterNotFoundError):
        store.get("b")
    log.records.append(LogRecord(5, "g/b", value(BY_GENRE)))
    assert store.get("b").parameters == {"GENRES"}


class _CountedLog(_RecordedLog):
    """A _RecordedLog that counts its reads."""

    reads = 0

    def read_from(self, start: int) -> list[LogRecord]:
        self.reads += 1
        return super().read_from(start)


def test_names_not_yet_seen_reread_the_topic_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_module, "_UNSEEN_NAME_REREAD_SECONDS", 0.2)
    log = _CountedLog([])
    store = FilterStore(log, "g")
    assert store.list() == [] and log.reads == 1
    log.records.append(
        LogRecord(0, "g/new", json.dumps({"expression": BY_GENRE, "created": 1.0}).encode())
    )
    assert store.get("new").text == BY_GENRE  # the first miss re-reads: a filter just made
    assert log.reads == 2
    for name in ("x1", "x2", "x3"):  # misses right after it: refused without a re-read
        with pytest.raises(FilterNotFoundError):
            store.get(name)
    assert log.reads == 2  # they came within the interval of the miss on "new"
    time.sleep(0.25)
    with pytest.raises(FilterNotFoundError):
        store.get("x4")
    assert log.reads == 3
