"""Redis memory of session histories, a published model version and precomputed lists.

    python bench/redis_memory.py [--history-users 10000] [--items 100000] [--list-users 100000]

Measures Redis `INFO memory` used_memory (less mem_clients_normal, the connections' buffers,
with the writers' connections closed) before and after writing each of these, through the
product's own store code, into one dataset group:
- histories: --history-users users, each with a full history (STREAMREC_HISTORY_LENGTH
  events, 50 by default, and as many interacted items) of events shaped as bench/ingest.py
  synthesises them (a 10-item impression, an event value, device and location, an
  attribution source on every third), ten to a PutEvents record, through the connector's
  planner (connector.ingest.plan: decode, limits, the dataset row, markers and the history
  member) and SessionStore.apply (the apply script: history, dedup markers, the session's
  link to its user, counters). Every event of a user falls inside the dedup window, so all
  its markers are kept: the most a history costs;
- model: a version of --items items with random weights of the shapes a trained model has
  (Hyperparameters() defaults, hidden dimension 64), published with ModelStore.publish;
- lists: --list-users users' precomputed lists of STREAMREC_LISTS_SIZE (100) catalogue items
  with scores rounded as ListRefresher stores them, written with RecommendationLists.write in
  chunks of 500 users (the refresher's chunk), which also marks each user active;
- served: --served-requests API answers of 500 items, each by a user of its own (the most a
  request can leave: a subject's list of recommendationIds besides the served list), stored
  with RedisServedLists.put as the API stores them.
Each per-unit figure is the used_memory difference divided by the count; the per-million
figure is that per-unit figure times one million (an extrapolation: per-key costs are
constant, so memory grows linearly). A breakdown by key comes from MEMORY USAGE of a sample.

The default history count is 10,000, not 100,000, because a full history costs about 125 KB
(measured here): 100,000 of them would take about 12.5 GB of a machine that others share.

Starts a local redis-server unless STREAMREC_REDIS_URL is set (then its keys are removed at
the end). Prints a table; the last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import schemas
from bench.ingest import synthetic_events
from bench.serve import item_id, random_version
from bench.serve_load import user_id
from bench.services import redis_service
from connector.api.settings import ApiSettings
from connector.ingest import plan as planner
from connector.ingest.rows import decode_json
from connector.keys import Keys, Subject
from connector.model.model import Hyperparameters
from connector.records import BatchPlan, ServedList, SourceRecord
from connector.registry.rules import check_schema
from connector.settings import ConnectorSettings
from connector.stores.lists import RecommendationLists, StoredList
from connector.stores.model_versions import ModelStore
from connector.stores.served import RedisServedLists
from connector.stores.sessions import SessionStore
from connector.wiring import history_policy

EVENTS_PER_RECORD = 10  # the PutEvents maximum
RECORDS_PER_BATCH = 500  # records applied at once, as a connector batch
LIST_CHUNK = 500  # users written at once, as ListRefresher's chunk
SAMPLE = 200  # subjects whose keys MEMORY USAGE measures for the breakdown
TRACKING_ID = "bench-memory-tracker"
MILLION = 1_000_000


def used_memory(client: redis.Redis) -> int:
    """Redis's used_memory less its clients' buffers: what the data costs. The writers'
    connections are closed first, so their query buffers (a batch's script argument is
    megabytes) are freed and not counted against the next phase."""
    client.connection_pool.disconnect()
    memory = client.info("memory")
    return int(memory["used_memory"]) - int(memory["mem_clients_normal"])


def measured(client: redis.Redis, write: Callable[[], None]) -> tuple[int, float]:
    """(used memory after - before, seconds) of one write phase."""
    before, started = used_memory(client), time.perf_counter()
    write()
    seconds = time.perf_counter() - started
    return used_memory(client) - before, seconds


def key_bytes(client: redis.Redis, keys: list[str]) -> float:
    """Mean MEMORY USAGE (every element counted) of the keys that exist."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    sizes = [size for size in pipe.execute() if size is not None]
    return sum(sizes) / len(sizes) if sizes else 0.0


# Histories


def history_records(users: int, length: int, start: int) -> Iterator[SourceRecord]:
    """PutEvents records giving each of `users` users `length` events of bench/ingest.py's
    shape, the newest one `start` seconds after the epoch and one second apart."""
    events = synthetic_events(users * length, seed=11)
    for index in range(users):
        user = user_id(index)
        own = [event for _, event in (next(events) for _ in range(length))]
        for n, event in enumerate(own):
            event["sentAt"] = start - length + n
        for offset in range(0, length, EVENTS_PER_RECORD):
            record = {
                "trackingId": TRACKING_ID,
                "userId": user,
                "sessionId": f"s-{user}",
                "eventList": own[offset : offset + EVENTS_PER_RECORD],
            }
            yield SourceRecord("events", 0, 0, user.encode(), orjson.dumps(record))


def apply_batch(
    store: SessionStore, context: planner.PlanContext, batch: list[SourceRecord]
) -> None:
    """The connector's event path without Kafka: plan the records, apply them to Redis."""
    plan = BatchPlan()
    envelopes = planner.open_envelopes(batch, context, plan)
    links = store.links(planner.anonymous_sessions(envelopes))
    planner.plan_events(envelopes, context, {}, links, plan)
    assert not plan.dead, f"events rejected: {plan.dead[0].reason}"
    report = store.apply(plan.accepted, plan.stitches)
    assert report.duplicates == 0, "synthetic events were taken for duplicates"


def write_histories(client: redis.Redis, settings: ConnectorSettings, users: int) -> None:
    """Every user's full history through the planner and SessionStore.apply."""
    store = SessionStore(client, Keys(settings.dataset_group), history_policy(settings))
    spec = check_schema("interactions", schemas.load(schemas.DATASET_FILES["interactions"]))
    context = planner.PlanContext(TRACKING_ID, spec, decode_json)
    batch: list[SourceRecord] = []
    records = history_records(users, settings.history_length, int(time.time()))
    for count, record in enumerate(records, start=1):
        batch.append(record)
        if len(batch) == RECORDS_PER_BATCH:
            apply_batch(store, context, batch)
            batch = []
        if count % 20_000 == 0:
            print(f"  histories: {count * EVENTS_PER_RECORD:,} events", flush=True)
    if batch:
        apply_batch(store, context, batch)


def history_breakdown(client: redis.Redis, keys: Keys, users: int) -> dict[str, float]:
    """Mean bytes of a sample of users' history, dedup markers and session link."""
    sample = [user_id(index) for index in range(0, users, max(1, users // SAMPLE))]
    return {
        "history": key_bytes(client, [keys.history(Subject("u", u)) for u in sample]),
        "markers": key_bytes(client, [keys.seen(Subject("u", u)) for u in sample]),
        "link": key_bytes(client, [keys.session_user(f"s-{u}") for u in sample]),
        "interacted": key_bytes(client, [keys.interacted(Subject("u", u)) for u in sample]),
    }


# Model and lists


def write_model(client: redis.Redis, keys: Keys, items: int) -> str:
    """A random version of `items` items published as the group's current one; its id."""
    return ModelStore(client, keys).publish(random_version(items, seed=7), keep=2)


def stored_list(rng: random.Random, version: str, items: int, size: int) -> StoredList:
    """`size` distinct catalogue items, best first, scored as ListRefresher rounds them."""
    chosen = rng.sample(range(items), size)
    scores = sorted((rng.uniform(-2.0, 6.0) for _ in chosen), reverse=True)
    ranked = [(item_id(i), round(s, 6)) for i, s in zip(chosen, scores, strict=True)]
    return StoredList(version, int(time.time() * 1000), ranked)


def write_lists(
    client: redis.Redis, settings: ConnectorSettings, version: str, users: int, items: int
) -> None:
    """Every user's list with RecommendationLists.write, LIST_CHUNK users a call."""
    lists = RecommendationLists(client, Keys(settings.dataset_group), settings.history_ttl_seconds)
    rng = random.Random(13)
    for start in range(0, users, LIST_CHUNK):
        chunk = range(start, min(users, start + LIST_CHUNK))
        lists.write(
            [
                (Subject("u", user_id(i)), stored_list(rng, version, items, settings.lists_size))
                for i in chunk
            ]
        )


def write_served(client: redis.Redis, settings: ApiSettings, requests: int) -> None:
    """`requests` answers of 500 items, each to a user of its own, as the API stores them."""
    served = RedisServedLists(client, Keys(settings.dataset_group))
    items = [item_id(n) for n in range(500)]
    for n in range(requests):
        served.put(
            uuid.uuid4().hex,
            ServedList(items, settings.api_attribution_source),
            settings.api_served_ttl_seconds,
            Subject("u", user_id(n)),
            settings.api_served_per_subject,
        )


# Report

PHASES = {  # phase: (what one unit is, the figure's name)
    "histories": ("user", "history_bytes_per_user"),
    "model": ("item", "model_bytes_per_item"),
    "lists": ("user", "list_bytes_per_user"),
    "served": ("request", "served_bytes_per_request"),
}


def figures(found: dict[str, tuple[int, float]], counts: dict[str, int]) -> dict[str, float]:
    """Bytes per unit of each phase, and per million units in GB (10^9 bytes)."""
    result: dict[str, float] = {}
    for phase, (_, name) in PHASES.items():
        per = found[phase][0] / counts[phase]
        result[name] = round(per, 1)
        result[name.replace("bytes", "gb").replace("_per_", "_per_million_") + "s"] = round(
            per * MILLION / 1e9, 3
        )
    return result


def print_table(
    found: dict[str, tuple[int, float]],
    counts: dict[str, int],
    result: dict[str, float],
    breakdown: dict[str, float],
) -> None:
    print(
        f"{'what':<10} {'count':>9} {'used_memory +MB':>16} {'seconds':>8} "
        f"{'bytes per unit':>15} {'GB per million':>15}"
    )
    for phase, (unit, name) in PHASES.items():
        delta, seconds = found[phase]
        per = result[name]
        print(
            f"{phase:<10} {counts[phase]:>9,} {delta / 1e6:>16.1f} {seconds:>8.1f} "
            f"{per:>10,.0f}/{unit:<4} {per * MILLION / 1e9:>15.3f}"
        )
    print(
        "GB per million = the measured bytes per unit times 1,000,000 (1 GB = 10^9 bytes).\n"
        "One user's history by key (MEMORY USAGE, mean of a sample): "
        + ", ".join(f"{name} {size:,.0f} B" for name, size in breakdown.items())
    )


def forget(client: redis.Redis, keys: Keys) -> None:
    """Remove the group's keys (only needed on a Redis the benchmark did not start)."""
    found = list(client.scan_iter(match=f"{keys.base}*", count=10_000))
    for start in range(0, len(found), 10_000):
        client.unlink(*found[start : start + 10_000])


def run(redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = ConnectorSettings(
        redis_url=redis_url, dataset_group=f"benchmem-{uuid.uuid4().hex[:8]}"
    )
    client, keys = redis.Redis.from_url(redis_url), Keys(settings.dataset_group)
    print(f"redis {client.info('server')['redis_version']}, group {settings.dataset_group}")
    found: dict[str, tuple[int, float]] = {}
    found["histories"] = measured(
        client, lambda: write_histories(client, settings, args.history_users)
    )
    breakdown = history_breakdown(client, keys, args.history_users)
    version: list[str] = []
    found["model"] = measured(client, lambda: version.append(write_model(client, keys, args.items)))
    found["lists"] = measured(
        client, lambda: write_lists(client, settings, version[0], args.list_users, args.items)
    )
    api = ApiSettings(redis_url=redis_url, dataset_group=settings.dataset_group)
    found["served"] = measured(client, lambda: write_served(client, api, args.served_requests))
    counts = {"histories": args.history_users, "model": args.items, "lists": args.list_users}
    counts["served"] = args.served_requests
    result = figures(found, counts)
    print_table(found, counts, result, breakdown)
    forget(client, keys)
    return {
        **result,
        "history_users": args.history_users,
        "history_length": settings.history_length,
        "items": args.items,
        "hidden_dimension": Hyperparameters().hidden_dimension,
        "list_users": args.list_users,
        "list_size": settings.lists_size,
        "redis_version": client.info("server")["redis_version"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history-users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--list-users", type=int, default=100_000)
    parser.add_argument("--served-requests", type=int, default=100_000)
    args = parser.parse_args()
    with redis_service() as redis_url:
        result = run(redis_url, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
