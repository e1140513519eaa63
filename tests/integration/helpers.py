"""Helpers for integration tests: read a topic to its end, build a group ready for events."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import redis
from confluent_kafka import Consumer, TopicPartition

import schemas
from connector.keys import Keys, Subject
from connector.records import SourceRecord
from connector.registry.registry import open_registry
from connector.settings import CommonSettings, ConnectorSettings
from connector.trackers import open_trackers
from connector.wiring import ensure_group_topics


@dataclass(frozen=True)
class Message:
    """A consumed record with its headers as a dict of text."""

    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int


def read_topic(settings: CommonSettings, topic: str, timeout: float = 30) -> list[Message]:
    """Every record of `topic` up to its end offsets now, partition by partition."""
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        messages = []
        for partition in sorted(metadata.topics[topic].partitions):
            messages.extend(_read_partition(consumer, topic, partition, timeout))
        return messages
    finally:
        consumer.close()


def source_records(settings: CommonSettings, topic: str) -> list[SourceRecord]:
    """Every record of `topic` now, as the connector's processors are handed them."""
    return [
        SourceRecord(topic, m.partition, m.offset, m.key, m.value)
        for m in read_topic(settings, topic)
    ]


def _read_partition(
    consumer: Consumer, topic: str, partition: int, timeout: float
) -> list[Message]:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    if high <= low:
        return []
    consumer.assign([TopicPartition(topic, partition, low)])
    found: list[Message] = []
    while not found or found[-1].offset < high - 1:
        message = consumer.poll(timeout)
        assert message is not None and not message.error(), f"reading {topic}: {message}"
        headers = {k: v.decode() for k, v in (message.headers() or [])}
        found.append(Message(message.key(), message.value(), headers, partition, message.offset()))
    return found


def decode_rows(settings: CommonSettings, messages: list[Message]) -> list[dict[str, Any]]:
    """Interactions rows from wire-format records, using the registry's schema by id."""
    registry = open_registry(settings)
    rows = []
    for message in messages:
        assert message.value is not None and message.value[0] == 0
        schema = registry.by_id(int.from_bytes(message.value[1:5], "big"))
        rows.append(fastavro.schemaless_reader(io.BytesIO(message.value[5:]), schema.parsed, None))
    return rows


def prepare_group(settings: ConnectorSettings) -> str:
    """Register the shipped schemas, create topics and the tracker; return the tracking id."""
    registry = open_registry(settings)
    for dataset, file in schemas.DATASET_FILES.items():
        registry.register(settings.dataset_group, dataset, schemas.load(file))
    ensure_group_topics(settings)
    return open_trackers(settings).create(settings.dataset_group).tracking_id


def put_events(
    tracking_id: str, session: str, events: list[dict[str, Any]], user: str | None = None
) -> bytes:
    """A PutEvents record as JSON bytes."""
    record: dict[str, Any] = {"trackingId": tracking_id, "sessionId": session, "eventList": events}
    if user is not None:
        record["userId"] = user
    return json.dumps(record).encode()


def mentioning(text: str) -> list[int]:
    """PIDs of our processes whose command line or environment holds `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            held = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if text.encode() in held:
            found.append(int(entry.name))
    return found


def answers(request: str | urllib.request.Request) -> bool:
    """Whether an HTTP server answers `request` at all (any status)."""
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our own server
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with a status
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass
class Running:
    """A long-running `streamrec` command; its combined output once it has stopped."""

    process: subprocess.Popen[str]
    output: str = field(default="")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[Running]:
    """Start `streamrec <command>`, wait until `ready_url` answers, hand it over, then stop it
    with SIGTERM (after a second, so a verbose process logs what it logs after the caller's
    requests) and keep its output."""
    process = subprocess.Popen(  # noqa: S603 - our own command
        ["streamrec", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = Running(process)
    try:
        deadline = time.monotonic() + 90
        while not answers(ready_url):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, f"{command} did not come up"
            time.sleep(0.2)
        yield run
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        run.output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def history_items(client: redis.Redis, group: str, subject: Subject) -> list[str]:
    """The items of a subject's session history in Redis, oldest first."""
    key = Keys(group).history(subject)
    return [json.loads(member)["item"] for member in client.zrange(key, 0, -1)]
