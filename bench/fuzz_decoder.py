"""Coverage-guided fuzzing (atheris, libFuzzer) of the record decoder and the batch planner.

Every input is one record value as it could arrive on `<group>.events`: the connector's own
decoder (JSON, or Avro in the Confluent wire format under a known, foreign or unknown schema
id) and pure planner (tracker, PutEvents limits, row mapping, markers, history entry) take
it, and must answer with accepted events and dead letters with a reason, each event decided
once. Any exception, or a record neither accepted nor dead-lettered, is a crash: its input is
saved and its signature counted. The fuzzer starts from a seed corpus of valid and invalid
JSON and Avro records and a dictionary of PutEvents tokens; streamrec's modules are
instrumented for coverage (fastavro and orjson are C and Rust, so only their answers count).

    pip install -e '.[fuzz]'
    python bench/fuzz_decoder.py [--seconds 60] [--seed 1] [--out /tmp/streamrec-fuzz]

Needs no server. Prints executions per second and crashes found (none expected; any
is a bug to fix), and ends with one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the machine
    raise SystemExit("atheris is not installed: pip install -e '.[fuzz]'") from None

with atheris.instrument_imports(include=["connector"]):
    from connector import wire
    from connector.exceptions import SchemaNotFoundError
    from connector.ingest import plan as planner
    from connector.ingest.processor import EventProcessor
    from connector.records import BatchPlan, ServedList, SourceRecord

import fastavro

import schemas
from connector.registry.rules import check_schema
from connector.registry.schema import ENVELOPE, RegisteredSchema

GROUP, TRACKING = "shop", "tid"
ENVELOPE_ID, INTERACTIONS_ID, FOREIGN_ID = 3, 5, 8
TOKENS = (
    "trackingId sessionId userId eventList eventType eventId itemId sentAt eventValue "
    "impression recommendationId metricAttribution eventAttributionSource properties device "
    "location numRatings tid r1 NaN Infinity -1 4102444800 1e400 9223372036854775808 null "
    "true [[[[[[[[ ]]]]]]]] \\u0000 \\ud800 {} [] : { * ?"
).split()


class _Registry:
    """The group's PutEvents schema, its Interactions schema, and another group's PutEvents."""

    def __init__(self, envelope: dict[str, Any], interactions: Any) -> None:
        self._by_id = {
            ENVELOPE_ID: RegisteredSchema(ENVELOPE_ID, GROUP, ENVELOPE, 1, {}, envelope, None),
            INTERACTIONS_ID: RegisteredSchema(
                INTERACTIONS_ID, GROUP, "interactions", 1, {}, interactions.parsed, interactions
            ),
            FOREIGN_ID: RegisteredSchema(FOREIGN_ID, "other", ENVELOPE, 1, {}, envelope, None),
        }

    def by_id(self, schema_id: int) -> RegisteredSchema:
        if schema_id not in self._by_id:
            raise SchemaNotFoundError(f"no schema has id {schema_id}")
        return self._by_id[schema_id]


class Target:
    """One input -> one single-record batch through decode and plan; checks the verdict."""

    def __init__(self, out: Path, seconds: float) -> None:
        envelope = cast(dict[str, Any], fastavro.parse_schema(schemas.load(schemas.ENVELOPE_FILE)))
        interactions = check_schema("interactions", schemas.load("interactions.avsc"))
        registry: Any = _Registry(envelope, interactions)
        unused: Any = None
        decode = EventProcessor(GROUP, registry, unused, unused, unused, unused).decode
        self.context = planner.PlanContext(TRACKING, interactions, decode)
        self.served = {"r1": ServedList(["a", "b"], "campaign")}
        self.envelope = envelope
        self.out, self.deadline = out, time.monotonic() + seconds
        self.started = time.monotonic()
        self.executions, self.accepted, self.dead = 0, 0, 0
        self.crashes: Counter[str] = Counter()

    def __call__(self, data: bytes) -> None:
        self.executions += 1
        try:
            self._check(self._plan(data))
        except Exception as exc:  # noqa: BLE001 - every escape is a finding, recorded below
            self._crash(data, exc)
        if time.monotonic() >= self.deadline:
            self.report()
            os._exit(0)  # libFuzzer never returns; end here with the figures printed

    def _plan(self, data: bytes) -> BatchPlan:
        result = BatchPlan()
        records = [SourceRecord("events", 0, 0, None, data)]
        envelopes = planner.open_envelopes(records, self.context, result)
        links = {"s": "alice"}
        return planner.plan_events(envelopes, self.context, self.served, links, result)

    def _check(self, result: BatchPlan) -> None:
        decided: list[tuple[int, int | None]] = [
            (e.source.offset, e.event_index) for e in result.accepted
        ]
        decided += [(d.source.offset, d.event_index) for d in result.dead]
        if any(not d.reason for d in result.dead):
            raise AssertionError("a dead letter without a reason")
        if len(set(decided)) != len(decided) or not decided:
            raise AssertionError(f"record decided {decided}")
        if (0, None) in decided and len(decided) != 1:
            raise AssertionError(f"record both dead-lettered and decided per event: {decided}")
        self.accepted += len(result.accepted)
        self.dead += len(result.dead)

    def _crash(self, data: bytes, exc: Exception) -> None:
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
        signature = f"{type(exc).__name__} at {where}: {str(exc)[:80]}"
        if signature not in self.crashes:
            path = self.out / f"crash-{len(self.crashes)}.bin"
            path.write_bytes(data)
            print(f"CRASH {signature} (input saved to {path})", file=sys.stderr)
        self.crashes[signature] += 1

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        rate = self.executions / elapsed if elapsed else 0.0
        print(f"\nfuzzing decode + plan for {elapsed:.0f} s")
        print(f"  {'executions':<28} {self.executions:>12,}")
        print(f"  {'executions/s':<28} {rate:>12,.0f}")
        print(f"  {'events accepted':<28} {self.accepted:>12,}")
        print(f"  {'dead letters':<28} {self.dead:>12,}")
        print(f"  {'distinct crashes':<28} {len(self.crashes):>12,}")
        for signature, times in self.crashes.most_common():
            print(f"    {times:>8,} x {signature}")
        figures = {
            "seconds": round(elapsed, 1),
            "executions": self.executions,
            "executions_per_second": round(rate),
            "accepted": self.accepted,
            "dead_letters": self.dead,
            "crashes": len(self.crashes),
            "crash_inputs": sum(self.crashes.values()),
        }
        print(json.dumps(figures), flush=True)


def seeds(envelope: dict[str, Any]) -> list[bytes]:
    """Valid and nearly valid records, JSON and Avro, for the fuzzer to mutate from."""
    event = {
        "eventType": "click",
        "itemId": "a:{b}*?[",
        "sentAt": 1_700_000_000,
        "eventId": "e1",
        "eventValue": 1.5,
        "impression": ["a", "b"],
        "recommendationId": "r1",
        "metricAttribution": {"eventAttributionSource": "email"},
        "properties": {"device": "tv", "location": "x"},
    }
    record = {"trackingId": TRACKING, "sessionId": "s", "userId": "u", "eventList": [event]}
    anonymous = {"trackingId": TRACKING, "sessionId": "s", "eventList": [event, event]}
    json_seeds = [
        json.dumps(record).encode(),
        json.dumps(anonymous).encode(),
        json.dumps({**record, "eventList": [{**event, "properties": '{"device": "tv"}'}]}).encode(),
        json.dumps({**record, "eventList": [{**event, "sentAt": -1}]}).encode(),
        b'{"trackingId":"tid","sessionId":"s","eventList":[{"eventType":"c","sentAt":NaN}]}',
    ]
    avro_seeds = [wire.encode(i, envelope, record) for i in (ENVELOPE_ID, INTERACTIONS_ID, 77)]
    return json_seeds + avro_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "streamrec-fuzz")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    target = Target(args.out, args.seconds)
    corpus = Path(tempfile.mkdtemp(prefix="corpus-", dir=args.out))
    for n, seed in enumerate(seeds(target.envelope)):
        (corpus / f"seed-{n}").write_bytes(seed)
    tokens = args.out / "putevents.dict"
    tokens.write_text("".join(f"{json.dumps(token)}\n" for token in TOKENS))
    libfuzzer = [
        sys.argv[0],
        f"-seed={args.seed}",
        f"-max_total_time={int(args.seconds) + 5}",  # a backstop: the target ends the run
        "-max_len=4096",
        f"-dict={tokens}",
        f"-artifact_prefix={args.out}/",
        str(corpus),
    ]
    atheris.Setup(libfuzzer, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
