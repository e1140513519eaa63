"""The connector as it runs in production: a `streamrec connector` process on a real broker,
killed with SIGKILL in the middle of a stream and restarted, with exact final counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

from connector.devservices.process import free_port
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.keys import Keys, Subject
from connector.settings import ConnectorSettings
from connector.sources.store import open_sources
from tests.integration.helpers import prepare_group, put_events, read_topic


@pytest.fixture
def connector_env(service_env: dict[str, str]) -> dict[str, str]:
    return {
        **service_env,
        "STREAMREC_CONNECTOR_WEB_PORT": str(free_port()),
        "STREAMREC_CONNECTOR_BATCH_SIZE": "500",
        "STREAMREC_CONNECTOR_SESSION_TIMEOUT_SECONDS": "6",
    }


@pytest.fixture
def start_connector(
    connector_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**overrides: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"connector-{len(started)}.log").open("wb")
        env = {**connector_env, **overrides}
        child = subprocess.Popen(
            ["streamrec", "connector"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(30)


def produce(settings: ConnectorSettings, values: list[tuple[bytes, bytes]]) -> None:
    """Publish (key, value) pairs to the events topic, in order even if a send is retried
    (the idempotent producer keeps a partition's order through retries)."""
    producer = Producer({**settings.kafka_config(), "enable.idempotence": True})
    for key, value in values:
        producer.produce(settings.topics.events, value, key=key)
    assert producer.flush(60) == 0


def counted_events(client: redis.Redis, keys: Keys) -> int:
    total = 0
    for bucket in client.zrange(keys.metric_buckets, 0, -1):
        total += sum(int(v) for v in client.hvals(keys.type_counts(int(bucket))))
    return total


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_good_and_bad_records_through_the_running_connector(
    settings: ConnectorSettings, redis_db: redis.Redis, start_connector
) -> None:
    tracking_id = prepare_group(settings)
    good = [
        (
            f"u{n}".encode(),
            put_events(
                tracking_id,
                "s",
                [{"eventType": "click", "itemId": f"i{n}", "sentAt": 1_700_000_000 + n}],
                user=f"u{n}",
            ),
        )
        for n in range(50)
    ]
    bad = [
        (b"x", b"{broken"),
        (b"x", os.urandom(40).replace(b"\x00", b"\x01")),
        (b"x", put_events("wrong-tracker", "s", [{"eventType": "c", "itemId": "i", "sentAt": 1}])),
    ]
    produce(settings, good[:25] + bad + good[25:])
    connector = start_connector()
    keys = Keys(settings.dataset_group)
    wait_for(lambda: counted_events(redis_db, keys) == 50, 120, "50 events in Redis")
    letters = read_topic(settings, settings.topics.deadletter)
    assert sorted(letter.value for letter in letters) == sorted(value for _, value in bad)
    connector.send_signal(signal.SIGTERM)
    assert connector.wait(60) is not None
    assert len(read_topic(settings, settings.topics.interactions)) == 50


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
    settings: ConnectorSettings, redis_db: redis.Redis, start_connector
) -> None:
    tracking_id = prepare_group(settings)
    users, total = 200, 20_000
    values = [
        (
            f"u{n % users}".encode(),
            put_events(
                tracking_id,
                f"s{n % users}",
                [{"eventType": "click", "itemId": f"i{n % 997}", "sentAt": 1_700_000_000 + n}],
                user=f"u{n % users}",
            ),
        )
        for n in range(total)
    ]
    produce(settings, values)
    keys = Keys(settings.dataset_group)
    at_kill: list[int] = []
    for _ in range(3):
        before = counted_events(redis_db, keys)
        connector = start_connector()
        wait_for(lambda b=before: counted_events(redis_db, keys) > b, 120, "a batch applied")
        time.sleep(0.3)
        connector.send_signal(signal.SIGKILL)
        connector.wait(30)
        at_kill.append(counted_events(redis_db, keys))
    assert any(0 < count < total for count in at_kill), at_kill  # killed mid-stream
    start_connector()
    wait_for(lambda: counted_events(redis_db, keys) == total, 300, f"{total} events")
    time.sleep(2)  # anything counted twice would show up now
    assert counted_events(redis_db, keys) == total
    for user in range(users):
        history = redis_db.zcard(keys.history(Subject("u", f"u{user}")))
        assert history == min(total // users, settings.history_length), f"u{user}"
    appended = read_topic(settings, settings.topics.interactions)
    markers = {message.headers["streamrec.marker"] for message in appended}
    assert len(markers) == total  # duplicates from a crash window carry the same marker
    assert read_topic(settings, settings.topics.deadletter) == []


def records_consumed(port: int) -> float:
    """streamrec_records_total of the connector whose web port is `port` (-1 if not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
            text = page.read().decode()
    except OSError:
        return -1.0
    lines = [line for line in text.splitlines() if line.startswith("streamrec_records_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_two_connectors_split_the_partitions_and_agree_with_one(
    settings: ConnectorSettings, redis_db: redis.Redis, start_connector
) -> None:
    tracking_id = prepare_group(settings)
    users, total = 40, 8_000
    keys = Keys(settings.dataset_group)
    values = [
        (
            f"u{n % users}".encode(),
            put_events(
                tracking_id,
                "s",
                [{"eventType": "click", "itemId": f"i{n}", "sentAt": 1_700_000_000 + n}],
                user=f"u{n % users}",
            ),
        )
        for n in range(total)
    ]
    ports = [free_port(), free_port()]
    first = start_connector(STREAMREC_CONNECTOR_WEB_PORT=str(ports[0]))
    second = start_connector(STREAMREC_CONNECTOR_WEB_PORT=str(ports[1]))
    wait_for(lambda: all(records_consumed(port) >= 0 for port in ports), 60, "both web ports")
    produce(settings, values[: total // 2])
    wait_for(lambda: counted_events(redis_db, keys) == total // 2, 180, "the first half")
    second.send_signal(signal.SIGTERM)  # leaves the group: its partitions move to the first
    second.wait(60)
    produce(settings, values[total // 2 :])
    wait_for(lambda: counted_events(redis_db, keys) == total, 180, "every event")
    time.sleep(2)
    assert counted_events(redis_db, keys) == total
    for user in range(users):
        members = redis_db.zrange(keys.history(Subject("u", f"u{user}")), 0, -1)
        expected = [f"i{n}" for n in range(user, total, users)][-settings.history_length :]
        assert [json.loads(member)["item"] for member in members] == expected
    assert records_consumed(ports[0]) > 0
    assert first.poll() is None


def test_the_running_connector_reads_the_sources_of_its_group(
    settings: ConnectorSettings, redis_db: redis.Redis, start_connector
) -> None:
    """A source created before the connector starts is consumed beside the events topic."""
    prepare_group(settings)
    topic = f"web.clicks.{settings.dataset_group}"
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, 2)])
    mapping = {
        "fields": {
            "userId": {"path": "user"},
            "eventType": {"const": "click"},
            "itemId": {"path": "item"},
            "sentAt": {"path": "ms", "convert": "epoch_millis"},
        }
    }
    open_sources(settings).create("clicks", topic, "json", mapping, None)
    producer = Producer(settings.kafka_config())
    for n in range(20):
        value = {"user": f"u{n % 4}", "item": f"i{n}", "ms": 1_700_000_000_000 + 1000 * n}
        producer.produce(topic, json.dumps(value).encode(), key=f"u{n % 4}".encode())
    assert producer.flush(60) == 0
    connector = start_connector()
    keys = Keys(settings.dataset_group)
    wait_for(lambda: counted_events(redis_db, keys) == 20, 120, "20 source events in Redis")
    assert redis_db.zcard(keys.history(Subject("u", "u1"))) == 5
    connector.send_signal(signal.SIGTERM)
    assert connector.wait(60) is not None
    assert len(read_topic(settings, settings.topics.interactions)) == 20
