"""`streamrec rebuild`: Redis serving state restored from the datasets in Kafka.

Why: Redis holds derived state only (the datasets in Kafka are the truth), so losing it — a
restart without persistence, a failover to an empty replica, a FLUSHDB by mistake — must
cost a replay, not the users' histories. The replay goes through the connector's own code:
each Interactions record becomes the AcceptedEvent ingest made of it (same subject, content
marker, history member) and is recorded by `SessionStore.apply`, the script ingest uses, so
the state after a rebuild is the state after ingest, and an event Redis already holds (its
marker is there) changes nothing. Sessions are stitched to their users after every event is
in, as ingest did at login; lists are recomputed with the served model; item and user
hashes come from the compacted Items and Users datasets and are written only where missing
(a hash that exists is as new as the dataset, or newer).

Two passes over the topic, up to the end offsets taken at start: the first learns each
subject's newest event and each session's user; the second replays. An event older than
its subject's dedup window has no marker left in Redis, after ingest as after a rebuild, so
a second rebuild could not recognise it: it is replayed only into a time bucket whose
counters did not exist when the rebuild started (they were lost with Redis). What cannot be
restored exactly is listed in docs/guarantees.md.

It restores the connector's state, but lives in the worker because it reads the topics with
worker.data.reader (the snapshot reader and the header names training uses), and the
connector must not import the worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from connector import redis_client, wire
from connector.filters.store import open_filters
from connector.ingest.plan import history_member
from connector.keys import Keys, Subject
from connector.records import UNDEFINED_SOURCE, AcceptedEvent, SourceRecord, Stitch
from connector.registry.registry import open_registry
from connector.registry.rules import DatasetSchema
from connector.registry.schema import RegisteredSchema
from connector.serving.current_model import ModelHolder
from connector.serving.filters import StoredFilters
from connector.serving.list_refresh import ListRefresher
from connector.serving.lists_setup import history_reader, list_policy
from connector.settings import ConnectorSettings
from connector.stores.lists import RecommendationLists, StoredList
from connector.stores.model_versions import ModelStore
from connector.stores.served import RedisServedLists
from connector.stores.sessions import SessionStore
from connector.wiring import history_policy
from worker.data.reader import (
    ATTRIBUTION_HEADER,
    EVENT_MARKER_HEADER,
    MARKER_HEADER,
    SESSION_HEADER,
    SUBJECT_HEADER,
    TopicReader,
    TopicRecord,
)

log = logging.getLogger("streamrec.rebuild")
BATCH = 2_000  # events per apply script: the connector's batches are of this order
PROGRESS_EVERY = 20_000  # records between progress lines
_FILL_MISSING = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""
_UNLINK_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
Say = Callable[[str], None]


@dataclass
class RebuildReport:
    """What a rebuild read and changed."""

    records: int = 0  # Interactions records read
    repeats: int = 0  # the same (key, marker) again: a crash window's second append
    applied: int = 0  # events recorded now (Redis did not hold them)
    held: int = 0  # events Redis already held
    skipped: int = 0  # beyond their dedup window in buckets Redis counts, or unmarked
    stitched: int = 0  # sessions linked to their user, history merged
    lists: int = 0  # precomputed lists written
    items: int = 0  # item hashes restored
    users: int = 0  # user hashes restored

    def summary(self) -> str:
        """One line for a person."""
        return (
            f"{self.records:,} records read ({self.repeats:,} repeats), "
            f"{self.applied:,} events restored, {self.held:,} already in Redis, "
            f"{self.skipped:,} skipped, {self.stitched:,} sessions "
            f"merged, {self.lists:,} lists, {self.items:,} items, {self.users:,} users"
        )


@dataclass(frozen=True)
class _Row:
    """One unique Interactions record, decoded, with what its event needs."""

    record: TopicRecord
    row: dict[str, Any]
    schema: DatasetSchema
    subject: Subject
    session_id: str
    marker: str


class Rebuilder:
    """Restores one dataset group's Redis state from its datasets in Kafka."""

    def __init__(self, settings: ConnectorSettings, say: Say | None = None) -> None:
        self._settings = settings
        self._say = say or (lambda line: log.info(line))
        self._registry = open_registry(settings)
        self._client = redis_client.connect(settings)
        self._keys = Keys(settings.dataset_group)
        self._store = SessionStore(self._client, self._keys, history_policy(settings))
        self._served = RedisServedLists(self._client, self._keys)
        self._schemas: dict[int, RegisteredSchema] = {}
        self._fill = self._client.register_script(_FILL_MISSING)
        self._unlink = self._client.register_script(_UNLINK_SAME)

    def run(self) -> RebuildReport:
        """Histories, markers, stitches and counters; then lists; then metadata hashes."""
        report = RebuildReport()
        topics = self._settings.topics
        with TopicReader(self._settings, topics.interactions) as reader:
            newest, owners = self._scan(reader)
            self._replay(reader, newest, report)
        self._stitch(owners, report)
        report.lists = self._lists(newest)
        report.items = self._metadata(topics.items_dataset, "items", "ITEM_ID", self._keys.item)
        report.users = self._metadata(topics.users_dataset, "users", "USER_ID", self._keys.user)
        return report

    # Pass 1: what the replay needs to know in advance

    def _scan(self, reader: TopicReader) -> tuple[dict[Subject, int], dict[str, str]]:
        """Each subject's newest event time, and each session's user (the one of its
        earliest event with a user: the login that stitched it)."""
        total = sum(high - low for low, high in reader.bounds.values())
        self._say(f"scanning {total:,} Interactions records of {self._settings.dataset_group!r}")
        newest: dict[Subject, int] = {}
        logins: dict[str, tuple[int, int, int, str]] = {}
        for entry in self._rows(reader, None):
            ts = int(entry.row["TIMESTAMP"])
            newest[entry.subject] = max(ts, newest.get(entry.subject, ts))
            if entry.subject.kind == "u" and entry.session_id:
                place = (ts, entry.record.partition, entry.record.offset, entry.subject.id)
                logins[entry.session_id] = min(place, logins.get(entry.session_id, place))
        return newest, {session: place[3] for session, place in logins.items()}

    # Pass 2: the replay

    def _replay(
        self, reader: TopicReader, newest: dict[Subject, int], report: RebuildReport
    ) -> None:
        total = sum(high - low for low, high in reader.bounds.values())
        window = self._settings.dedup_window_seconds
        counted = self._counted_buckets()
        batch: list[_Row] = []
        for entry in self._rows(reader, report):
            ts = int(entry.row["TIMESTAMP"])
            if ts < newest[entry.subject] - window and self._bucket(ts) in counted:
                report.skipped += 1
                continue
            batch.append(entry)
            if len(batch) >= BATCH:
                self._apply(batch, report)
                batch = []
                if report.records % PROGRESS_EVERY < BATCH:
                    self._say(f"replayed {report.records:,} of {total:,} records")
        self._apply(batch, report)
        self._say(f"replayed {report.records:,} of {total:,} records")

    def _rows(self, reader: TopicReader, report: RebuildReport | None) -> Iterator[_Row]:
        """The reader's records decoded, each (key, marker) once."""
        seen: set[tuple[str, str]] = set()
        for record in reader.records():
            if record.value is None:
                continue
            if report is not None:
                report.records += 1
            marker = record.headers.get(MARKER_HEADER, "")
            if marker:
                if (record.key, marker) in seen:
                    if report is not None:
                        report.repeats += 1
                    continue
                seen.add((record.key, marker))
            yield self._decode(record, marker)

    def _decode(self, record: TopicRecord, marker: str) -> _Row:
        assert record.value is not None  # noqa: S101 - filtered by the caller
        registered = self._schema(wire.schema_id(record.value))
        spec = _spec(registered)
        row = as_written(wire.decode(record.value, registered.parsed), spec)
        session = record.headers.get(SESSION_HEADER, "")
        return _Row(record, row, spec, _subject(record, str(row["USER_ID"])), session, marker)

    def _schema(self, schema_id: int) -> RegisteredSchema:
        found = self._schemas.get(schema_id)
        if found is None:
            found = self._schemas[schema_id] = self._registry.by_id(schema_id)
        return found

    def _apply(self, batch: list[_Row], report: RebuildReport) -> None:
        if not batch:
            return
        served = self._served.get_many(
            {str(e.row["RECOMMENDATION_ID"]) for e in batch if e.row.get("RECOMMENDATION_ID")}
        )
        events = [_event(entry, served) for entry in batch]
        self._admit_types(batch)
        marked = [event for event in events if event.markers]
        report.skipped += len(events) - len(marked)  # not written by the connector: no identity
        applied = self._store.apply(marked, [])
        report.applied += len(applied.applied)
        report.held += applied.duplicates

    def _admit_types(self, batch: list[_Row]) -> None:
        """The distinct event types, as ingest admits them (within the schema's budget)."""
        schema = batch[-1].schema
        if schema.field("EVENT_TYPE") is not None:
            types = {str(e.row["EVENT_TYPE"]) for e in batch if e.row.get("EVENT_TYPE")}
            self._store.admit_event_types(types, schema.event_type_budget)

    def _counted_buckets(self) -> set[int]:
        """Time buckets whose event-type counters exist now, before the replay."""
        members: list[bytes] = self._client.zrange(self._keys.metric_buckets, 0, -1)  # type: ignore[assignment]
        buckets = [int(member) for member in members]
        pipe = self._client.pipeline(transaction=False)
        for bucket in buckets:
            pipe.exists(self._keys.type_counts(bucket))
        return {b for b, found in zip(buckets, pipe.execute(), strict=True) if found}

    def _bucket(self, ts: int) -> int:
        return ts - ts % self._settings.metrics_bucket_seconds

    def _stitch(self, owners: dict[str, str], report: RebuildReport) -> None:
        """Link each session to its user and merge its history and markers into the user's,
        after every event is in, as ingest did at login. A link that already names the same
        user is made again, so the merge also happens on top of live state (after Redis came
        back empty the connector links again at the next login, over an empty session); a
        link to another user is live state's decision and stays."""
        stitches = [Stitch(session, user) for session, user in sorted(owners.items())]
        for start in range(0, len(stitches), BATCH):
            chunk = stitches[start : start + BATCH]

            def fill(pipe: Any, chunk: list[Stitch] = chunk) -> None:
                for stitch in chunk:
                    self._unlink(
                        keys=[self._keys.session_user(stitch.session_id)],
                        args=[stitch.user_id],
                        client=pipe,
                    )

            redis_client.run_pipeline(self._client, fill, _UNLINK_SAME)
            report.stitched += self._store.apply([], chunk).stitched
        self._say(f"{report.stitched:,} of {len(stitches):,} sessions merged into their user")

    # Lists and metadata

    def _lists(self, subjects: dict[Subject, int]) -> int:
        """Lists of the subjects that have none, or one of another model version."""
        if not self._settings.lists_enabled:
            return 0
        holder = ModelHolder(
            ModelStore(self._client, self._keys),
            index_min_items=self._settings.serving_index_min_items,
        )
        holder.reload()
        served = holder.current
        if served is None:
            self._say("no model version is published: lists follow with the first one")
            return 0
        refresher = self._refresher(holder)
        ordered, written = list(subjects), 0
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            stale = [
                s
                for s, v in zip(chunk, self._list_versions(chunk), strict=True)
                if v != served.version
            ]
            written += refresher.refresh(stale)
        self._say(f"{written:,} precomputed lists written with model {served.version}")
        return written

    def _list_versions(self, subjects: list[Subject]) -> list[str | None]:
        raws = redis_client.mget(self._client, [self._keys.recommendations(s) for s in subjects])
        return [None if raw is None else StoredList.from_json(raw).version for raw in raws]

    def _refresher(self, holder: ModelHolder) -> ListRefresher:
        """The connector's list refresher, without its background model follower."""
        settings, client, keys = self._settings, self._client, self._keys
        filters = (
            StoredFilters(open_filters(settings), client, keys) if settings.lists_filter else None
        )
        lists = RecommendationLists(client, keys, settings.history_ttl_seconds)
        policy, histories = list_policy(settings), history_reader(settings, client)
        return ListRefresher(client, keys, holder, lists, policy, histories, filters)

    def _metadata(self, topic: str, dataset: str, id_field: str, key: Callable[[str], str]) -> int:
        """Hashes of the entities whose hash is missing, from the latest row of each."""
        latest: dict[str, bytes] = {}
        with TopicReader(self._settings, topic) as reader:
            for record in reader.records():
                if record.value is None:
                    latest.pop(record.key, None)
                else:
                    latest[record.key] = record.value
        restored = 0
        for raw in latest.values():
            registered = self._schema(wire.schema_id(raw))
            row = as_written(wire.decode(raw, registered.parsed), _spec(registered))
            fields = [
                part
                for name, value in row.items()
                if value is not None
                for part in (name, _text(value))
            ]
            restored += int(self._fill(keys=[key(str(row[id_field]))], args=fields))
        self._say(f"{restored:,} of {len(latest):,} {dataset} hashes restored")
        return restored


def as_written(row: dict[str, Any], schema: DatasetSchema) -> dict[str, Any]:
    """A decoded row with each Avro `float` as the shortest decimal that reads back to the
    same 32-bit value (4.7 rather than 4.699999809265137), as a producer would have sent it."""
    floats = [spec.name for spec in schema.fields if spec.type == "float"]
    if not floats:
        return row
    fixed = dict(row)
    for name in floats:
        if fixed.get(name) is not None:
            fixed[name] = float(str(np.float32(fixed[name])))
    return fixed


def _event(entry: _Row, served: dict[str, Any]) -> AcceptedEvent:
    """The AcceptedEvent ingest made of this row: same subject, content marker, history
    member, event type and attribution (the eventId marker is not in the dataset)."""
    row, headers = entry.row, entry.record.headers
    impression = row.get("IMPRESSION")
    served_list = served.get(str(row.get("RECOMMENDATION_ID") or ""))
    attribution = (
        headers.get(ATTRIBUTION_HEADER)  # what ingest counted (written since issue 17)
        or row.get("EVENT_ATTRIBUTION_SOURCE")
        or (served_list.source if served_list is not None else UNDEFINED_SOURCE)
    )
    source = SourceRecord(
        headers.get("streamrec.topic", ""),
        int(headers.get("streamrec.partition", "-1")),
        int(headers.get("streamrec.offset", "-1")),
        None,
        None,
    )
    return AcceptedEvent(
        source=source,
        event_index=int(headers.get("streamrec.event_index", "0")),
        subject=entry.subject,
        session_id=entry.session_id,
        row=row,
        markers=_markers(entry.marker, headers.get(EVENT_MARKER_HEADER, "")),
        history_member=history_member(
            row, entry.schema, impression.split("|") if impression else None
        ),
        event_type=str(row.get("EVENT_TYPE") or ""),
        attribution=str(attribution),
    )


def _markers(content: str, by_event_id: str) -> tuple[str, ...]:
    """The dedup markers ingest recorded: the content marker, then the eventId's (in the
    dataset since issue 17; older records carry the content marker only)."""
    if not content:
        return ()
    return (content, by_event_id) if by_event_id else (content,)


def _subject(record: TopicRecord, user: str) -> Subject:
    """Whose keys the event went to at ingest: the kind the connector recorded with it. A
    record appended before that header existed is a session's when its USER_ID is its
    sessionId, which also takes a user's event whose sessionId equals its userId (as
    `streamrec import` wrote them) for a session's: the header settles it."""
    kind = record.headers.get(SUBJECT_HEADER, "")
    if kind in ("u", "s"):
        return Subject(kind, user)
    session = record.headers.get(SESSION_HEADER, "")
    return Subject("s", user) if session and session == user else Subject("u", user)


def _spec(registered: RegisteredSchema) -> DatasetSchema:
    if registered.spec is None:
        raise ValueError(f"schema {registered.id} is not a dataset schema")
    return registered.spec


def _text(value: Any) -> str:
    """Hash field values as ingest writes them: text as is, the rest in JSON spelling."""
    return value if isinstance(value, str) else json.dumps(value)
