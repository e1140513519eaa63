"""Helpers of the fault tests: a stream whose exact outcome is known in advance, services
the test owns (so stopping them disturbs nobody else), and the reconciliation of what was
produced against the Interactions dataset, the dead-letter topic and Redis.

The expected outcome is computed here from the stream alone, not with the product's code:
history members are spelled out as the documented JSON, counters summed per bucket.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, TopicPartition

from connector.devservices import kafka as local_kafka
from connector.devservices import process
from connector.devservices import redis as local_redis
from connector.devservices.settings import DevSettings
from connector.keys import Keys, Subject
from connector.redis_client import mget
from connector.settings import ConnectorSettings
from tests.integration.helpers import decode_rows, put_events, read_topic

BASE_TS = 1_700_000_000
TYPES = ("click", "view", "purchase")
UNDEFINED = "SOURCE_NAME_UNDEFINED"


@dataclass(frozen=True)
class Sent:
    """One distinct valid event and where ingest must record it."""

    subject: Subject
    session: str
    item: str
    type: str
    ts: int

    @property
    def member(self) -> bytes:
        """The history member docs/redis-keys.md documents, keys sorted."""
        entry = {
            "context": {},
            "impression": None,
            "item": self.item,
            "ts": self.ts,
            "type": self.type,
            "value": None,
        }
        return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)


@dataclass
class Stream:
    """`total` events of `users` users in time order; each user's first `anonymous` events
    come from their session before login (then stitched), every `resend_every`-th event is
    sent twice (a duplicate ingest must drop) and a broken record follows every
    `bad_every`-th event (a dead letter). Records are keyed by session, so each user's
    events stay in order in one partition. With `shuffled_times`, the event times are a
    seeded permutation instead, so neither a history (sorted by time) nor sorting by time
    could stand in for the order the events were produced in."""

    tracking_id: str
    users: int
    total: int
    anonymous: int = 3
    resend_every: int = 997
    bad_every: int = 1000
    shuffled_times: bool = False
    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    bad: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        times = [BASE_TS + n for n in range(self.total)]
        if self.shuffled_times:
            random.Random(self.total).shuffle(times)  # noqa: S311 - a seeded test order
        for n, ts in enumerate(times):
            user, session = f"u{n % self.users}", f"s{n % self.users}"
            logged_in = n // self.users >= self.anonymous
            event = {"eventType": TYPES[n % 3], "itemId": f"i{(n * 7) % 997}", "sentAt": ts}
            value = put_events(self.tracking_id, session, [event], user if logged_in else None)
            subject = Subject("u", user) if logged_in else Subject("s", session)
            self.sent.append(Sent(subject, session, event["itemId"], event["eventType"], ts))
            self.records.append((session.encode(), value))
            if n % self.resend_every == self.resend_every - 1:
                self.records.append((session.encode(), value))
            if n % self.bad_every == self.bad_every - 1:
                broken = b'{"broken": ' + str(n).encode()
                self.bad.append(broken)
                self.records.append((session.encode(), broken))

    def users_and_sessions(self) -> list[tuple[str, str]]:
        """Each (user, session) pair: every session logs in as its one user."""
        return [(f"u{u}", f"s{u}") for u in range(min(self.users, self.total))]

    def histories(self, length: int) -> dict[Subject, list[bytes]]:
        """What each history must hold, oldest first: a session its anonymous events, a user
        the newest `length` of its own and its session's (merged at login)."""
        by_subject: dict[Subject, list[Sent]] = defaultdict(list)
        for sent in self.sent:
            by_subject[sent.subject].append(sent)
            if sent.subject.kind == "s":
                user = Subject("u", "u" + sent.session[1:])
                by_subject[user].append(sent)
        return {
            subject: [s.member for s in sorted(events, key=lambda s: s.ts)][-length:]
            for subject, events in by_subject.items()
        }

    def counters(
        self, bucket_seconds: int
    ) -> tuple[dict[int, Counter[str]], dict[int, Counter[str]]]:
        """Events per type and per attribution source in each time bucket."""
        types: dict[int, Counter[str]] = defaultdict(Counter)
        sources: dict[int, Counter[str]] = defaultdict(Counter)
        for sent in self.sent:
            bucket = sent.ts - sent.ts % bucket_seconds
            types[bucket][sent.type] += 1
            sources[bucket][UNDEFINED] += 1
        return types, sources


# Reconciliation


def dataset_markers(settings: ConnectorSettings) -> dict[str, set[str]]:
    """Every content marker in the Interactions dataset, by record key."""
    found: dict[str, set[str]] = defaultdict(set)
    for message in read_topic(settings, settings.topics.interactions):
        found[(message.key or b"").decode()].add(message.headers["streamrec.marker"])
    return found


def reconcile_dataset(settings: ConnectorSettings, stream: Stream) -> None:
    """The Interactions dataset holds each distinct event once (repeats from a crash window
    carry the same marker and are dropped, as every reader does); the dead-letter topic
    holds each broken record once per origin (topic, partition, offset)."""
    messages = read_topic(settings, settings.topics.interactions)
    unique: dict[tuple[bytes | None, str], Any] = {}
    for message in messages:
        unique.setdefault((message.key, message.headers["streamrec.marker"]), message)
    rows = decode_rows(settings, list(unique.values()))
    got = Counter((r["USER_ID"], r["ITEM_ID"], r["TIMESTAMP"], r["EVENT_TYPE"]) for r in rows)
    want = Counter((s.subject.id, s.item, s.ts, s.type) for s in stream.sent)
    assert got == want, f"dataset differs: {len(got - want)} extra, {len(want - got)} missing"
    letters = read_topic(settings, settings.topics.deadletter)
    by_origin = {
        (
            m.headers["streamrec.topic"],
            m.headers["streamrec.partition"],
            m.headers["streamrec.offset"],
        ): m.value
        for m in letters
    }
    assert sorted(v or b"" for v in by_origin.values()) == sorted(stream.bad)
    assert all("streamrec.reason" in m.headers for m in letters)


def most_copies(settings: ConnectorSettings) -> int:
    """The most copies of one event (one key and marker) in the Interactions dataset."""
    messages = read_topic(settings, settings.topics.interactions)
    copies = Counter((message.key, message.headers["streamrec.marker"]) for message in messages)
    return max(copies.values(), default=0)


def most_dead_letter_copies(settings: ConnectorSettings) -> int:
    """The most dead letters of one origin (topic, partition, offset, event index)."""
    letters = read_topic(settings, settings.topics.deadletter)
    copies = Counter(
        tuple(
            m.headers.get(name)
            for name in (
                "streamrec.topic",
                "streamrec.partition",
                "streamrec.offset",
                "streamrec.event_index",
            )
        )
        for m in letters
    )
    return max(copies.values(), default=0)


def reconcile_order(settings: ConnectorSettings, stream: Stream) -> None:
    """Per record key of the Interactions dataset (the subject's id), the first copy of each
    event (by its `streamrec.marker` header; a crash or a retry may append another later)
    comes in exactly the order the stream produced that subject's events."""
    messages = read_topic(settings, settings.topics.interactions)
    got: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    firsts: set[tuple[bytes | None, str]] = set()
    for message, row in zip(messages, decode_rows(settings, messages), strict=True):
        first = (message.key, message.headers["streamrec.marker"])
        if first not in firsts:
            firsts.add(first)
            got[(message.key or b"").decode()].append(
                (row["ITEM_ID"], row["TIMESTAMP"], row["EVENT_TYPE"])
            )
    want: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for sent in stream.sent:
        want[sent.subject.id].append((sent.item, sent.ts, sent.type))
    assert got.keys() == want.keys()
    for key, events in want.items():
        first_difference = next(
            (n for n, pair in enumerate(zip(got[key], events, strict=False)) if len(set(pair)) > 1),
            min(len(got[key]), len(events)),
        )
        assert got[key] == events, f"order of {key} differs from event {first_difference} on"


def reconcile_redis(settings: ConnectorSettings, client: redis.Redis, stream: Stream) -> None:
    """Counters, histories, dedup markers, stitches and event types exactly as ingest of
    the stream must leave them."""
    keys = Keys(settings.dataset_group)
    types, sources = stream.counters(settings.metrics_bucket_seconds)
    buckets = {int(b) for b in client.zrange(keys.metric_buckets, 0, -1)}
    assert buckets == set(types)
    pipe = client.pipeline(transaction=False)
    for bucket in sorted(types):
        pipe.hgetall(keys.type_counts(bucket))
        pipe.hgetall(keys.source_counts(bucket))
    replies = iter(pipe.execute())
    for bucket in sorted(types):
        assert _counts(next(replies)) == types[bucket], f"type counts of bucket {bucket}"
        assert _counts(next(replies)) == sources[bucket], f"source counts of bucket {bucket}"
    histories = stream.histories(settings.history_length)
    pipe = client.pipeline(transaction=False)
    for subject in histories:
        pipe.zrange(keys.history(subject), 0, -1)
    for (subject, want), got in zip(histories.items(), pipe.execute(), strict=True):
        assert got == want, f"history of {subject}"
    markers = dataset_markers(settings)
    pipe = client.pipeline(transaction=False)
    for subject in histories:
        pipe.zrange(keys.seen(subject), 0, -1)
    for subject, got in zip(histories, pipe.execute(), strict=True):
        want = set(markers.get(subject.id, set()))
        if subject.kind == "u":  # the session's markers merged at login
            want |= markers.get("s" + subject.id[1:], set())
        assert {m.decode() for m in got} == want, f"dedup markers of {subject}"
    pairs = stream.users_and_sessions()
    links = mget(client, [keys.session_user(session) for _, session in pairs])
    assert [link.decode() if link else None for link in links] == [u for u, _ in pairs]
    assert {t.decode() for t in client.smembers(keys.event_types)} == set(TYPES)


def counted(client: redis.Redis, keys: Keys) -> int:
    """Events counted in Redis over every bucket (one pipeline: there are thousands)."""
    pipe = client.pipeline(transaction=False)
    for bucket in client.zrange(keys.metric_buckets, 0, -1):
        pipe.hvals(keys.type_counts(int(bucket)))
    return sum(int(v) for values in pipe.execute() for v in values)


def _counts(reply: dict[bytes, bytes]) -> Counter[str]:
    return Counter({name.decode(): int(count) for name, count in reply.items()})


def redis_state(client: redis.Redis, group: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every key of the group with its value (sets and sorted sets with scores), but not
    the keys containing any of `skip`: a comparable picture of the state."""
    state: dict[str, Any] = {}
    for raw in client.scan_iter(match=f"streamrec:{group}:*", count=1000):
        key = raw.decode()
        if any(part in key for part in skip):
            continue
        kind = client.type(key).decode()
        if kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "set":
            state[key] = client.smembers(key)
        elif kind == "string":
            state[key] = client.get(key)
    return state


def committed_everything(settings: ConnectorSettings) -> bool:
    """Whether the connector's group committed every events-topic partition to its end."""
    consumer = Consumer({**settings.kafka_config(), "group.id": settings.consumer_group})
    try:
        meta = consumer.list_topics(settings.topics.events, timeout=10)
        parts = [
            TopicPartition(settings.topics.events, p)
            for p in meta.topics[settings.topics.events].partitions
        ]
        committed = consumer.committed(parts, timeout=10)
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            if tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


# Services the test owns


class OwnService:
    """A local Kafka broker or redis-server of one test, stopped and started again on the
    same port (Kafka keeps its data folder; Redis runs without persistence, so it comes back
    empty)."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind, self.workdir = kind, workdir
        self.port = process.free_port()
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """What clients are given: a bootstrap list or a Redis URL."""
        if self.kind == "kafka":
            return f"127.0.0.1:{self.port}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) and wait until it answers."""
        dev = DevSettings()
        if self.kind == "kafka":
            self._child = local_kafka.start(
                self.workdir, self.port, dev.dev_kafka_heap, dev.dev_start_timeout, dev.dev_dir
            )
        else:
            self._child = local_redis.start(self.workdir, self.port, dev.dev_start_timeout, False)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after a grace period)."""
        if self._child is not None:
            process.stop(self._child.pid)
            self._child = None


def alive(*children: subprocess.Popen[bytes]) -> bool:
    """True while every child runs; fails the test at once when one has exited."""
    for child in children:
        assert child.poll() is None, f"{child.args} exited with {child.returncode}"
    return True


def wait_until(check: Any, timeout: float, what: str, every: float = 0.25) -> float:
    """Poll `check` until true; fail naming `what` after `timeout`; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout}s waiting for {what}"
        )
        time.sleep(every)
    return time.monotonic() - started
