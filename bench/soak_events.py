"""The soak benchmark's traffic, and the reconciliation of it against the Interactions dataset.

Event number n is a pure function of (seed, n): its user, item, type and device come from a
SplitMix64 hash of n, its event time is `t0 + n // rate` and its EVENT_VALUE is
`n % 2**20` (exact in Avro's float). So the soak never has to keep what it produced: the
reconciliation recomputes it, and each dataset row names its own n (the event time gives
n // rate, the value gives n modulo 2**20). Two events of one user in the same second differ
in their value, so the connector's content dedup (same subject, same second, same content)
never merges two of them: every event produced is distinct and must be recorded once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import fastavro
from confluent_kafka import Consumer, Message, TopicPartition

from connector.registry.registry import open_registry
from connector.registry.schema import SchemaRegistry
from connector.settings import ConnectorSettings

TYPES = ("click", "watch", "purchase")
DEVICES = ("phone", "tv", "web")
VALUE_MODULUS = 1 << 20  # float32 holds every integer below 2**24 exactly
MARKER_HEADER = "streamrec.marker"
_MASK = (1 << 64) - 1


def _mix(value: int) -> int:
    """SplitMix64's finaliser: a well-spread 64-bit hash of `value`."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _pareto(hashed: int, alpha: float) -> float:
    """A Pareto(alpha) draw (>= 1) from the low 32 bits of a hash."""
    uniform = (hashed & 0xFFFFFFFF) / 2**32
    return float((1.0 - uniform) ** (-1.0 / alpha))


@dataclass(frozen=True)
class Traffic:
    """The events of one soak run: `users` users and `items` items, both skewed, `rate`
    events per second of event time from `t0`, tagged with `run` in their eventId."""

    run: str
    seed: int
    users: int
    items: int
    rate: int
    t0: int

    def user(self, n: int) -> str:
        return f"user-{int(_pareto(_mix(self.seed * 4 + n * 16), 1.2) * 20) % self.users}"

    def fields(self, n: int) -> tuple[str, str, int, str, float]:
        """(USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE) of event n."""
        base = self.seed * 4 + n * 16
        item = int(_pareto(_mix(base + 1), 1.1) * 20) % self.items
        kind = TYPES[_mix(base + 2) % len(TYPES)]
        return (
            self.user(n),
            f"item-{item}",
            self.t0 + n // self.rate,
            kind,
            float(n % VALUE_MODULUS),
        )

    def event(self, n: int) -> tuple[str, dict[str, Any]]:
        """(user, PutEvents event) of event n."""
        user, item, sent_at, kind, value = self.fields(n)
        event: dict[str, Any] = {
            "eventId": f"{self.run}-{n}",
            "eventType": kind,
            "itemId": item,
            "sentAt": sent_at,
            "eventValue": value,
            "properties": {"device": DEVICES[_mix(self.seed * 4 + n * 16 + 3) % 3]},
        }
        if n % 4 == 0:
            index = int(item.rsplit("-", 1)[1])
            event["impression"] = [item, *(f"item-{(index + k) % self.items}" for k in (1, 2))]
        return user, event

    def number(self, timestamp: int, value: float) -> int | None:
        """The n of the event with this event time and value, None if no event has them."""
        second = timestamp - self.t0
        if second < 0 or value != int(value):
            return None
        low = second * self.rate
        candidate = low + (int(value) - low) % VALUE_MODULUS
        return candidate if candidate < low + self.rate else None

    def history_counts(self, total: int) -> dict[str, int]:
        """Events per user among the first `total`."""
        counts: dict[str, int] = {}
        for n in range(total):
            user = self.user(n)
            counts[user] = counts.get(user, 0) + 1
        return counts


@dataclass
class Reconciliation:
    """What the Interactions dataset holds against what was produced."""

    produced: int
    records: int = 0  # records in the topic
    repeats: int = 0  # records repeating an earlier (key, marker): at-least-once, dropped
    lost: int = 0  # produced events with no row
    duplicated: int = 0  # rows beyond one per produced event, repeats of a marker included
    duplicated_in_crash_window: int = 0  # of those, rows appended in the connector's crash window
    duplicated_distinct: int = 0  # produced events with more than one distinct (key, marker)
    unexpected: int = 0  # rows that are no produced event, or differ from it
    most_copies: int = 0  # the most rows of one produced event

    @property
    def duplicated_outside_crash_window(self) -> int:
        return self.duplicated - self.duplicated_in_crash_window

    @property
    def exact(self) -> bool:
        return not (self.lost or self.duplicated_distinct or self.unexpected)


def reconcile_dataset(
    settings: ConnectorSettings,
    traffic: Traffic,
    total: int,
    in_crash_window: Callable[[int, int], bool] = lambda _partition, _offset: False,
) -> Reconciliation:
    """Every event n < total must be in the Interactions dataset: once after dropping records
    that repeat a (key, marker) already read, as every reader of the dataset does (`lost`,
    `duplicated_distinct`, `unexpected`), and once before (`duplicated`: every row beyond the
    first of an event, split by `in_crash_window(partition, offset)` of the extra row)."""
    result = Reconciliation(produced=total)
    seen = bytearray(total)  # distinct markers per event
    rows = bytearray(total)  # rows per event
    markers: dict[tuple[bytes, bytes], int] = {}  # (key, marker) -> n, -1 if unexpected
    for partition, offset, key, marker, row in _rows(settings, settings.topics.interactions):
        result.records += 1
        n = markers.get((key, marker))
        if n is not None:
            result.repeats += 1
        else:
            fields = (row["USER_ID"], row["ITEM_ID"], row["TIMESTAMP"], row["EVENT_TYPE"])
            value = row["EVENT_VALUE"]
            found = None if value is None else traffic.number(row["TIMESTAMP"], value)
            known = found is not None and found < total and traffic.fields(found)[:4] == fields
            n = found if known and found is not None else -1
            markers[(key, marker)] = n
            if n < 0:
                result.unexpected += 1
                continue
            seen[n] = min(seen[n] + 1, 255)
        if n < 0:
            continue
        if rows[n]:
            result.duplicated += 1
            result.duplicated_in_crash_window += in_crash_window(partition, offset)
        rows[n] = min(rows[n] + 1, 255)
    result.lost = seen.count(0)
    result.duplicated_distinct = sum(1 for count in seen if count > 1)
    result.most_copies = max(rows, default=0)
    return result


def _rows(
    settings: ConnectorSettings, topic: str
) -> Iterator[tuple[int, int, bytes, bytes, dict[str, Any]]]:
    """(partition, offset, key, marker, decoded row) of every record of `topic` up to its end
    offsets now."""
    registry = open_registry(settings)
    parsed: dict[int, Any] = {}
    consumer = Consumer({**settings.kafka_config(), "group.id": "soak-reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        for partition in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            position, idle = low, 0
            while position < high:
                messages = consumer.consume(min(5000, high - position), timeout=10)
                idle = 0 if messages else idle + 1
                if idle > 6:
                    raise TimeoutError(f"{topic}[{partition}] stopped at {position} of {high}")
                for message in messages:
                    if message.error() is not None:
                        raise RuntimeError(f"reading {topic}: {message.error()}")
                    position = (message.offset() or 0) + 1
                    yield partition, position - 1, *_decoded(message, registry, parsed)
    finally:
        consumer.close()


def _decoded(
    message: Message, registry: SchemaRegistry, parsed: dict[int, Any]
) -> tuple[bytes, bytes, dict[str, Any]]:
    """(key, marker, row) of one wire-format record; schemas parsed once per id."""
    value = message.value() or b""
    schema_id = int.from_bytes(value[1:5], "big")
    if schema_id not in parsed:
        parsed[schema_id] = registry.by_id(schema_id).parsed
    row = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed[schema_id], None)
    headers = cast(list[tuple[str, bytes | None]], message.headers() or [])
    marker = next((raw or b"" for name, raw in headers if name == MARKER_HEADER), b"")
    key = message.key() or b""
    return key, marker, cast(dict[str, Any], row)


def topic_size(settings: ConnectorSettings, topic: str) -> int:
    """Records in `topic` (sum of high minus low watermarks)."""
    consumer = Consumer({**settings.kafka_config(), "group.id": "soak-reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
            total += high - low
        return total
    finally:
        consumer.close()
