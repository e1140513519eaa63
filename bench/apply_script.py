"""Where the Redis apply script spends its time, by leaving out one part at a time.

Plans synthetic events (the shape bench/ingest.py publishes) with the connector's own pure
planner, then runs `SessionStore.apply` over them in batches with the shipped script and with
variants that each leave out one kind of call, each against an emptied Redis database, and
prints the Redis server's CPU microseconds per event for each. The difference to the full
script is what that part costs.

    python bench/apply_script.py [--events 20000] [--batch 1000]

Uses STREAMREC_REDIS_URL, else starts a local redis-server. The last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import schemas
from bench.ingest import synthetic_events
from bench.services import redis_service
from connector.ingest import plan as planner
from connector.ingest.rows import decode_json
from connector.keys import Keys
from connector.records import AcceptedEvent, BatchPlan, SourceRecord
from connector.registry.rules import check_schema
from connector.settings import ConnectorSettings
from connector.stores import sessions
from connector.wiring import history_policy

FULL = sessions._script("apply_batch.lua")
# Each variant removes one line of the script: what is left out is what that line costs.
VARIANTS = {
    "full script": ("", ""),
    "without dedup ZMSCORE": (
        "local known = known_of(seen, markers_at(values, firsts))",
        "local known = {}",
    ),
    "without marker ZADD": ("  each_chunk('ZADD', seen, nil, scored)\n", ""),
    "without history ZADD": (
        "  each_chunk('ZADD', subject .. batch.history_suffix, nil, history)\n",
        "",
    ),
    "without interacted ZADD": (
        "  each_chunk('ZADD', subject .. batch.interacted_suffix, 'GT', interacted)\n",
        "",
    ),
    "without bounds and TTLs": (
        "for subject, newest in pairs(touched) do bound(subject, newest) end",
        "",
    ),
    "without counters": (
        "flush_counts(type_counts, batch.type_prefix, batch.metrics_ttl, batch.buckets_key)",
        "",
    ),
}


def planned_batches(events: int, batch: int) -> list[list[AcceptedEvent]]:
    """Accepted events in batches, planned exactly as the connector plans them."""
    schema = check_schema("interactions", schemas.load(schemas.DATASET_FILES["interactions"]))
    context = planner.PlanContext("bench", schema, decode_json)
    records = [
        SourceRecord(
            "events",
            0,
            n,
            None,
            orjson.dumps(
                {
                    "trackingId": "bench",
                    "userId": user,
                    "sessionId": f"s-{user}",
                    "eventList": [event],
                }
            ),
        )
        for n, (user, event) in enumerate(synthetic_events(events, seed=5))
    ]
    batches = []
    for start in range(0, events, batch):
        plan = BatchPlan()
        envelopes = planner.open_envelopes(records[start : start + batch], context, plan)
        batches.append(planner.plan_events(envelopes, context, {}, {}, plan).accepted)
    return batches


def time_variant(client: redis.Redis, source: str, batches: list[list[AcceptedEvent]]) -> float:
    """The Redis server's CPU microseconds per event (INFO cpu) for applying every batch
    with `source` as the apply script."""
    client.flushdb()
    store = sessions.SessionStore(
        client, Keys("bench"), history_policy(ConnectorSettings(dataset_group="bench"))
    )
    store._apply = client.register_script(source)
    started = _server_cpu(client)
    for events in batches:
        store.apply(events, [])
    total = sum(len(events) for events in batches)
    return round((_server_cpu(client) - started) / total * 1e6, 2)


def _server_cpu(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used (user and system)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs")
    args = parser.parse_args()
    batches = planned_batches(args.events, args.batch)
    figures: dict[str, float] = {}
    with redis_service() as url:
        client = redis.Redis.from_url(url)
        for name, (line, replacement) in VARIANTS.items():
            if line and line not in FULL:
                raise SystemExit(f"apply_batch.lua no longer has the line {name!r} removes")
            source = FULL.replace(line, replacement) if line else FULL
            if line and source == FULL:
                raise SystemExit(f"variant {name!r}: line not found in the script")
            runs = sorted(time_variant(client, source, batches) for _ in range(args.rounds))
            figures[name] = runs[len(runs) // 2]
        client.flushdb()
    full = figures["full script"]
    print(f"\napply script, {args.events:,} events in batches of {args.batch:,}")
    print(f"  {'variant':<26} {'Redis CPU µs/event':>19} {'part costs':>11}")
    for name, value in figures.items():
        part = round(full - value, 2) if name != "full script" else ""
        print(f"  {name:<26} {value:>19} {part:>11}")
    print(json.dumps({name.replace(" ", "_"): value for name, value in figures.items()}))


if __name__ == "__main__":
    main()
