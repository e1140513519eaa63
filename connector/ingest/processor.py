"""One batch of event records, end to end: plan, dedup, append, apply — in the order that
makes a crash at any point safe to replay.

1. decode, check and map every record (pure, `plan`); failures become dead letters;
2. drop events whose markers Redis already holds, or that repeat one earlier in the batch;
3. append accepted events to the Interactions dataset and dead letters to their topic, and
   wait until the broker confirms;
4. apply the batch's Redis effects in one script, which skips any event already applied;
5. recompute the precomputed lists of the users the batch touched (when a model is served).
Offsets are committed by the caller only after this returns. A crash before 4 replays the
batch: 3 may append an event twice (the header marker lets readers drop it), 4 applies it
once. A crash after 4 replays nothing into Redis: 2 finds every marker.

Each step group is a method, and the connector (connector/app.py) runs them as `process`
does, pipelined across batches: 1-2 (`prepare`) for batch n+1 while batch n waits for the
broker and Redis in 3 (`append`) and 4 (`apply`), each retried apart, and 5
(`refresh_lists`) for batch n-1 meanwhile; it commits a batch's offsets after all five. Batch
n's markers and stitches may not be in Redis yet when n+1 is prepared, so `prepare` is given
batch n (`in_flight`) and treats its markers as recorded and its stitches as linked, as Redis
will once n is applied.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from connector import wire
from connector.exceptions import InvalidEventError, SchemaNotFoundError
from connector.ingest import carry
from connector.ingest import plan as planner
from connector.ingest.carry import Carried, Carry
from connector.ingest.rows import decode_json
from connector.ingest.writer import DatasetWriter
from connector.keys import Subject
from connector.records import AcceptedEvent, BatchPlan, DeadLetter, SourceRecord
from connector.registry.rules import DatasetSchema
from connector.registry.schema import ENVELOPE, RegisteredSchema, SchemaRegistry
from connector.serving.list_refresh import RefreshesLists
from connector.stores.served import ServedLists
from connector.stores.sessions import SessionStore
from connector.trackers import TrackerStore


@dataclass(frozen=True)
class BatchReport:
    """What one batch did, for logs, metrics and tests."""

    records: int
    appended: int
    dead: int
    duplicates: int
    stitched: int
    counted: list[tuple[str, str]] = field(default_factory=list)  # (event type, source)
    lists_refreshed: int = 0
    stages: dict[str, float] = field(default_factory=dict)  # finish's stages, seconds each


@dataclass(frozen=True)
class PreparedBatch:
    """A batch planned and pre-checked (steps 1-2), ready for its append and Redis apply;
    `carried` is what a batch prepared while this one is in flight takes as recorded."""

    records: list[SourceRecord]
    schema: RegisteredSchema
    plan: BatchPlan
    fresh: list[AcceptedEvent]
    repeated: int
    carried: Carried


class EventProcessor:
    """Processes batches of one dataset group's event records."""

    def __init__(
        self,
        group: str,
        registry: SchemaRegistry,
        trackers: TrackerStore,
        store: SessionStore,
        served: ServedLists,
        writer: DatasetWriter,
        lists: RefreshesLists | None = None,
        decode: planner.Decoder | None = None,
    ) -> None:
        """`decode` turns a record into its PutEvents envelope: a source's mapping
        (connector/sources), else `decode` below (PutEvents in JSON or Avro)."""
        self._group = group
        self._registry = registry
        self._trackers = trackers
        self._store = store
        self._served = served
        self._writer = writer
        self._lists = lists
        self._decode: planner.Decoder = decode or self.decode

    def process(self, records: list[SourceRecord]) -> BatchReport:
        """Steps 1-5 above for `records`, one after the other: the steps the connector runs
        (connector/app.py), which pipelines them across batches and retries each apart.
        Raises on transient errors."""
        prepared = self.prepare(records)
        report = self.apply(prepared, self.append(prepared))
        started = time.perf_counter()
        refreshed = self.refresh_lists([prepared])
        report.stages["lists"] = time.perf_counter() - started
        return replace(report, lists_refreshed=refreshed)

    def prepare(
        self, records: list[SourceRecord], in_flight: PreparedBatch | None = None
    ) -> PreparedBatch:
        """Steps 1-2, as if `in_flight` (the batch before, prepared but perhaps not yet
        applied) were already in Redis; no write but the event-type admission."""
        schema = self._registry.current(self._group, "interactions")
        spec = _spec(schema)
        previous = in_flight.carried if in_flight is not None else None
        plan, before = self._plan(records, spec, previous)
        plan.dead.extend(self._over_budget(plan, spec))
        fresh, repeated = self._fresh(plan.accepted, before)
        window = self._store.policy.dedup_window_seconds
        carried = Carried.of(fresh, plan.stitches, window)
        return PreparedBatch(records, schema, plan, fresh, repeated, carried)

    def append(self, prepared: PreparedBatch) -> float:
        """Step 3: the batch's valid events to the Interactions dataset and its invalid ones
        to the dead-letter topic; seconds taken. The connector retries this step and `apply`
        apart, so a batch whose Redis apply fails is not appended again on every retry."""
        plan, schema = prepared.plan, prepared.schema
        started = time.perf_counter()
        self._writer.write(prepared.fresh, plan.dead, schema.id, schema.parsed)
        return time.perf_counter() - started

    def apply(self, prepared: PreparedBatch, append_seconds: float = 0.0) -> BatchReport:
        """Step 4: the Redis apply of an appended batch; its report."""
        plan, fresh = prepared.plan, prepared.fresh
        started = time.perf_counter()
        applied = self._store.apply(fresh, plan.stitches)
        stages = {"append": append_seconds, "apply": time.perf_counter() - started}
        return BatchReport(
            records=len(prepared.records),
            appended=len(fresh),
            dead=len(plan.dead),
            duplicates=prepared.repeated + applied.duplicates,
            stitched=applied.stitched,
            counted=[(event.event_type, event.attribution) for event in applied.applied],
            stages=stages,
        )

    def refresh_lists(self, batches: Sequence[PreparedBatch]) -> int:
        """Step 5: the lists of every subject the batches touched, from their histories as
        recorded, each subject once however many of them touched it; how many were written."""
        if self._lists is None:
            return 0
        return self._lists.refresh(s for batch in batches for s in _touched(batch.plan))

    def _plan(
        self, records: list[SourceRecord], schema: DatasetSchema, previous: Carried | None
    ) -> tuple[BatchPlan, Carry]:
        tracker = self._trackers.of_group(self._group)
        context = planner.PlanContext(
            tracker.tracking_id if tracker else None, schema, self._decode
        )
        plan = BatchPlan()
        envelopes = planner.open_envelopes(records, context, plan)
        served = self._served.get_many(planner.recommendation_ids(envelopes))
        anonymous = planner.anonymous_sessions(envelopes)
        stored = self._store.links(carry.sessions_to_look_up(anonymous, previous))
        links, carried = carry.resolve(anonymous, stored, previous)
        return planner.plan_events(envelopes, context, served, links, plan), carried

    def decode(self, raw: bytes) -> dict[str, object]:
        """A PutEvents record from JSON, or from Avro in the Confluent wire format: written
        with the group's envelope schema, or with a writer schema registered for it, read
        as the current envelope by Avro schema resolution."""
        if not wire.is_wire_format(raw):
            return decode_json(raw)
        schema_id = wire.schema_id(raw)
        try:
            schema = self._registry.by_id(schema_id)
        except SchemaNotFoundError as exc:
            raise InvalidEventError(f"unknown schema id {schema_id}") from exc
        if (schema.group, schema.dataset) != (self._group, ENVELOPE):
            raise InvalidEventError(
                f"schema id {schema_id} is the {schema.dataset} schema of group "
                f"{schema.group!r}, not a PutEvents schema of {self._group!r}"
            )
        if schema.subject is None:
            return wire.decode(raw, schema.parsed)
        envelope = self._registry.current(self._group, ENVELOPE)
        return wire.decode(raw, schema.parsed, self._registry.reader_for(schema, envelope))

    def _over_budget(self, plan: BatchPlan, schema: DatasetSchema) -> list[DeadLetter]:
        """Reject events whose type would exceed the distinct-event-type budget."""
        if schema.field("EVENT_TYPE") is None:
            return []  # event types are not stored, so they do not count
        types = {event.event_type for event in plan.accepted}
        allowed = self._store.admit_event_types(types, schema.event_type_budget)
        refused = [event for event in plan.accepted if event.event_type not in allowed]
        plan.accepted = [event for event in plan.accepted if event.event_type in allowed]
        return [
            DeadLetter(
                event.source,
                f"event type {event.event_type!r} would exceed the budget of "
                f"{schema.event_type_budget} distinct event types this schema leaves "
                "(optional fields plus event types may not exceed 10)",
                event.event_index,
            )
            for event in refused
        ]

    def _fresh(
        self, events: list[AcceptedEvent], carried: Carry
    ) -> tuple[list[AcceptedEvent], int]:
        """Events not seen before (in Redis, in the batch in flight, or earlier in this
        batch); and how many were. An event of a user the batch in flight merges a session
        into is also checked against that session's markers."""
        tags = [carried.tags(event.subject) for event in events]
        pairs = list(zip(events, tags, strict=True))
        probes = [(tag, event.markers) for event, own in pairs for tag in own]
        flags = iter(self._store.known(probes))
        fresh: list[AcceptedEvent] = []
        seen = set(carried.markers)
        for event, own in pairs:
            known = [next(flags) for _ in own]  # every probe's flag, in order
            probed = [(tag, marker) for tag in own for marker in event.markers]
            if not any(known) and seen.isdisjoint(probed):
                fresh.append(event)
            seen.update(probed[: len(event.markers)])  # the event's own (first tag's) markers
        return fresh, len(events) - len(fresh)


def _touched(plan: BatchPlan) -> list[Subject]:
    """Whose lists the batch changes: every subject with an event in it (duplicates too, so
    a replayed batch refreshes again) and every user an anonymous session was stitched to."""
    subjects = [event.subject for event in plan.accepted]
    return subjects + [Subject("u", stitch.user_id) for stitch in plan.stitches]


def _spec(schema: RegisteredSchema) -> DatasetSchema:
    if schema.spec is None:
        raise SchemaNotFoundError(f"schema {schema.id} is not a dataset schema")
    return schema.spec
