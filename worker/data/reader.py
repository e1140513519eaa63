"""Reading a dataset topic from Kafka as it was when the read started.

Training needs a fixed snapshot, not a live stream: the reader takes each partition's end
offset once, at start, and stops every partition there, so a run reads a well-defined range
(which the cache records) even while the connector keeps appending. It uses `assign()`
without a consumer group: nothing is committed, because where to start next time is the
cache's business, not the broker's.

The Interactions dataset is appended at-least-once: a crash between append and commit can
append an event again, with the same `streamrec.marker` header. `unique` drops such repeats.
Anonymous events are keyed by their session id; `stitch` attributes them to the user who
later logged in with that session, as Personalize does at its next full retraining.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from connector import wire
from connector.exceptions import InvalidEventError, KafkaUnavailableError, SchemaNotFoundError
from connector.registry.registry import open_registry
from connector.registry.schema import SchemaRegistry
from connector.settings import CommonSettings

log = logging.getLogger(__name__)

MARKER_HEADER = "streamrec.marker"
SESSION_HEADER = "streamrec.session_id"
EVENT_MARKER_HEADER = "streamrec.event_marker"  # the eventId's dedup marker, if it had one
ATTRIBUTION_HEADER = "streamrec.attribution"  # the attribution source ingest counted
SUBJECT_HEADER = "streamrec.subject"  # "u" (a user's event) or "s" (an anonymous session's)
NO_MARKER = np.uint64(0)  # dedup hash of a record without a marker: never a duplicate
_FETCH_BATCH = 5000
_FETCH_WAIT = 0.1  # seconds


@dataclass
class TopicReader:
    """Reads one topic up to the end offsets it had when the reader was opened.

    `bounds` maps each partition to its (low, high) watermarks at open; `fetched` counts the
    records read so far, so callers (and tests) can see how much a run cost.
    """

    settings: CommonSettings
    topic: str
    timeout: float = 30.0
    progress_every: int = 100_000
    topic_id: str | None = field(init=False, default=None)
    bounds: dict[int, tuple[int, int]] = field(init=False, default_factory=dict)
    fetched: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                **self.settings.kafka_config(),
                "group.id": f"streamrec-dataset-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            self._snapshot()
        except BaseException:
            self._consumer.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the cluster; the reader cannot be used afterwards."""
        self._consumer.close()

    def _snapshot(self) -> None:
        """The topic's id and partitions now; a topic that does not exist reads as empty."""
        described = _describe(self.settings, self.topic, self.timeout)
        if described is None:
            return
        self.topic_id, partitions = described
        for partition in partitions:
            where = TopicPartition(self.topic, partition)
            try:
                low, high = self._consumer.get_watermark_offsets(where, timeout=self.timeout)
            except KafkaException as exc:
                raise KafkaUnavailableError(f"offsets of {self.topic}: {exc}") from exc
            self.bounds[partition] = (low, high)

    def records(self, start: Mapping[int, int] | None = None) -> Iterator[TopicRecord]:
        """Records from `start` (default: the low watermark) to the end offsets at open,
        partition 0 first, each partition in offset order."""
        begin = {p: max(low, (start or {}).get(p, low)) for p, (low, _) in self.bounds.items()}
        total = sum(self.bounds[p][1] - first for p, first in begin.items())
        log.info("reading topic", extra={"topic": self.topic, "records": total})
        for partition in sorted(self.bounds):
            high = self.bounds[partition][1]
            if begin[partition] < high:
                yield from self._partition(partition, begin[partition], high)

    def _partition(self, partition: int, first: int, high: int) -> Iterator[TopicRecord]:
        self._consumer.assign([TopicPartition(self.topic, partition, first)])
        try:
            while True:
                for message in self._batch(partition):
                    record = _record(message, partition)
                    if record is None or record.offset >= high:
                        return
                    self._count()
                    yield record
                    if record.offset >= high - 1:
                        return
        finally:
            self._consumer.unassign()

    def _batch(self, partition: int) -> list[Message]:
        """Whatever arrived, in short waits: `consume` returns early only once a whole batch
        is in, so one long wait would stall the tail of every partition."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            batch = self._consumer.consume(_FETCH_BATCH, _FETCH_WAIT)
            if batch:
                return batch
        raise KafkaUnavailableError(f"no record from {self.topic}[{partition}] in {self.timeout}s")

    def _count(self) -> None:
        self.fetched += 1
        if self.fetched % self.progress_every == 0:
            log.info("reading topic", extra={"topic": self.topic, "fetched": self.fetched})


def _describe(settings: CommonSettings, topic: str, timeout: float) -> tuple[str, list[int]] | None:
    """(topic id, partitions), or None when the topic does not exist (nothing written yet)."""
    admin = AdminClient(settings.kafka_config())
    future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic]
    try:
        description = future.result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise KafkaUnavailableError(f"describing {topic}: {exc}") from exc
    return str(description.topic_id), [p.id for p in description.partitions]


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """A consumed record as plain values: headers decoded to text."""

    partition: int
    offset: int
    key: str
    value: bytes | None
    headers: dict[str, str]


def _record(message: Message, partition: int) -> TopicRecord | None:
    """The record in `message`; None at the partition's end; raises on a consumer error."""
    error = message.error()
    if error is not None:
        if error.code() == KafkaError._PARTITION_EOF:
            return None
        raise KafkaUnavailableError(f"reading {message.topic()}[{partition}]: {error}")
    return TopicRecord(
        partition=partition,
        offset=message.offset() or 0,
        key=(message.key() or b"").decode(),
        value=message.value(),
        headers=_headers(message),
    )


def _headers(message: Message) -> dict[str, str]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in pairs
        if value is not None
    }


class RowDecoder:
    """Decodes wire-format dataset rows of one dataset of one group, one parse per schema id."""

    def __init__(self, registry: SchemaRegistry, group: str, dataset: str) -> None:
        self._registry = registry
        self._owner = (group, dataset)
        self._parsed: dict[int, dict[str, Any]] = {}

    def __call__(self, raw: bytes) -> dict[str, Any]:
        if not wire.is_wire_format(raw):
            raise InvalidEventError(f"a {self._owner[1]} dataset record is not in wire format")
        schema_id = wire.schema_id(raw)
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = self._parsed[schema_id] = self._schema(schema_id)
        return wire.decode(raw, parsed)

    def _schema(self, schema_id: int) -> dict[str, Any]:
        try:
            schema = self._registry.by_id(schema_id)
        except SchemaNotFoundError as exc:
            raise InvalidEventError(f"dataset record has unknown schema id {schema_id}") from exc
        if (schema.group, schema.dataset) != self._owner:
            raise InvalidEventError(
                f"schema id {schema_id} belongs to {schema.group}/{schema.dataset}, "
                f"not {'/'.join(self._owner)}"
            )
        return schema.parsed


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """One Interactions record: where it was, its key and headers, and the decoded row."""

    partition: int
    offset: int
    key: str
    session_id: str | None
    marker: str | None
    row: dict[str, Any]

    @property
    def dedup_hash(self) -> np.uint64:
        """64 bits of blake2b over (key, marker), NO_MARKER without a marker. Hashes rather
        than strings keep the cache's dedup column at 8 bytes a row; a collision (2^-64 per
        pair) would drop one event."""
        if self.marker is None:
            return NO_MARKER
        digest = hashlib.blake2b(f"{self.key}\0{self.marker}".encode(), digest_size=8).digest()
        return np.uint64(int.from_bytes(digest, "big") or 1)


def interaction_records(
    reader: TopicReader, decode: RowDecoder, start: Mapping[int, int] | None = None
) -> Iterator[DatasetRecord]:
    """Decoded records of `reader`'s topic from `start` to its end offsets, in partition order."""
    for record in reader.records(start):
        if record.value is None:
            continue  # the Interactions dataset has no tombstones; nothing to train on
        yield DatasetRecord(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            session_id=record.headers.get(SESSION_HEADER),
            marker=record.headers.get(MARKER_HEADER),
            row=decode(record.value),
        )


def unique(records: Iterable[DatasetRecord]) -> Iterator[DatasetRecord]:
    """`records` without repeats: the same (key, marker) seen again is the same event."""
    seen: set[tuple[str, str]] = set()
    for record in records:
        if record.marker is not None:
            identity = (record.key, record.marker)
            if identity in seen:
                continue
            seen.add(identity)
        yield record


def stitch(users: np.ndarray, sessions: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Users after attributing anonymous rows to the user their session logged in as.

    `users` and `sessions` are codes into one vocabulary of ids (-1: no session), so a row
    is anonymous when its user code equals its session code. A session that logged in as
    several users goes to the one of its earliest logged-in row (ties: the earlier row).
    """
    has_session = sessions >= 0
    anonymous = np.flatnonzero(has_session & (users == sessions))
    known = np.flatnonzero(has_session & (users != sessions))
    if not len(anonymous) or not len(known):
        return users
    known = known[np.lexsort((known, timestamps[known]))]
    logged, first = np.unique(sessions[known], return_index=True)
    owners = users[known][first]
    where = np.minimum(np.searchsorted(logged, sessions[anonymous]), len(logged) - 1)
    hit = logged[where] == sessions[anonymous]
    result = users.copy()
    result[anonymous[hit]] = owners[where[hit]]
    return result


def read_rows(
    settings: CommonSettings, registry: SchemaRegistry | None = None
) -> list[dict[str, Any]]:
    """Every Interactions row of the group up to the end offsets now, without the cache:
    repeats dropped, anonymous rows stitched, in partition order."""
    registry = registry or open_registry(settings)
    decode = RowDecoder(registry, settings.dataset_group, "interactions")
    with TopicReader(settings, settings.topics.interactions) as reader:
        records = list(unique(interaction_records(reader, decode)))
    ids: dict[str, int] = {}
    users = np.array([ids.setdefault(r.row["USER_ID"], len(ids)) for r in records], np.int64)
    sessions = np.array(
        [-1 if r.session_id is None else ids.setdefault(r.session_id, len(ids)) for r in records],
        np.int64,
    )
    timestamps = np.array([int(r.row["TIMESTAMP"]) for r in records], np.int64)
    names = list(ids)
    stitched = stitch(users, sessions, timestamps)
    return [
        {**record.row, "USER_ID": names[int(code)]}
        for record, code in zip(records, stitched, strict=True)
    ]
