"""CPU time per user of ListRefresher.refresh, in process, against a real redis-server.

    PYTHONPATH=<tree> python3 bench/refresh_cpu.py [--items 100000] [--users 20000]
                      [--batch 200] [--runs 5] [--profile out.prof]

Why: the freshness target of issue 5 rests on what refreshing one user's precomputed list
costs, and an in-process figure (no broker, no load generator) is what can be compared
between two commits side by side. The code measured is whatever `connector` the PYTHONPATH
names (the script adds no path of its own), so the same file measures two trees.

Set-up: bench/serve.py's random model version of --items items is published to Redis and
served as the connector serves it (item index from 50,000 items, one BLAS thread); --users
users get --events (5-50) history events each (skewed toward popular items, every fifth one
with an impression of --shown (10) items, so the ignored-impression penalty has work). Then
--runs passes over all users in batches of --batch, each batch one `refresh` call; per pass,
CPU seconds (process time) per user. Prints each pass and the median; with --profile, one more pass
under cProfile, saved for `python3 -m pstats`. With --new-version, also the wall time of
refreshing every user's list as a new model version does (ListRefresher.refresh_active),
at the default rate limit (STREAMREC_LISTS_NEW_VERSION_RATE) and without one; the last line
is then one JSON object of those figures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import random
import statistics
import time

import orjson
import redis

from bench.serve import random_version
from bench.serve_load import user_id
from bench.services import redis_service
from connector.keys import Keys, Subject
from connector.serving.current_model import ModelHolder
from connector.serving.item_index import single_threaded_numerics
from connector.serving.list_refresh import ListPolicy, ListRefresher
from connector.settings import ConnectorSettings
from connector.stores.histories import HistoryReader
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore

GROUP = "refreshcpu"


def write_histories(
    client: redis.Redis, keys: Keys, users: int, items: int, events: tuple[int, int], shown: int
) -> None:
    rng = random.Random(5)
    sent_at = int(time.time()) - 3600
    pipe = client.pipeline(transaction=False)
    for index in range(users):
        members = {}
        for n in range(rng.randint(*events)):
            item = f"item-{int(rng.paretovariate(1.1) * 20) % items}"
            impression = [f"item-{rng.randrange(items)}" for _ in range(shown)]
            entry = {
                "item": item,
                "type": rng.choice(("click", "watch", "purchase")),
                "value": None,
                "ts": sent_at + n,
                "context": {"DEVICE": rng.choice(("phone", "tv", "web"))},
                "impression": impression if impression and n % 5 == 0 else None,
            }
            members[orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode()] = sent_at + n
        pipe.zadd(keys.history(Subject("u", user_id(index))), members)
        if index % 1000 == 999:
            pipe.execute()
    pipe.execute()


def one_pass(refresher: ListRefresher, users: int, batch: int) -> float:
    started = time.process_time()
    for start in range(0, users, batch):
        refresher.refresh(Subject("u", user_id(i)) for i in range(start, min(users, start + batch)))
    return (time.process_time() - started) / users


def new_version(
    client: redis.Redis,
    keys: Keys,
    holder: ModelHolder,
    lists: RecommendationLists,
    histories: HistoryReader,
    users: int,
) -> None:
    """Wall time of refresh_active over every user, rate-limited as by default and not."""
    figures: dict[str, float] = {"users": users}
    for name, rate in (("default_rate", ListPolicy().active_rate), ("unlimited", 0.0)):
        policy = ListPolicy(active_max=users, active_rate=rate)
        refresher = ListRefresher(client, keys, holder, lists, policy, histories)
        started = time.perf_counter()
        done = refresher.refresh_active()
        seconds = time.perf_counter() - started
        figures[f"{name}_seconds"] = round(seconds, 1)
        print(f"new version, {name} ({rate:g}/s): {done:,} lists in {seconds:.1f} s", flush=True)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", default="5,50", help="history length range, inclusive")
    parser.add_argument("--shown", type=int, default=10, help="impression size, every 5th event")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--new-version", action="store_true", help="time refresh_active too")
    args = parser.parse_args()
    single_threaded_numerics()
    with redis_service() as url:
        client = redis.Redis.from_url(url)
        keys = Keys(GROUP)
        ModelStore(client, keys).publish(random_version(args.items, seed=1), keep=2)
        low, high = (int(n) for n in args.events.split(","))
        write_histories(client, keys, args.users, args.items, (low, high), args.shown)
        holder = ModelHolder(ModelStore(client, keys))
        holder.reload()
        lists = RecommendationLists(client, keys, 86_400)
        histories = HistoryReader(client, keys, ConnectorSettings().history_length)
        refresher = ListRefresher(client, keys, holder, lists, ListPolicy(), histories)
        one_pass(refresher, min(args.users, 2 * args.batch), args.batch)  # warm the caches
        runs = []
        for run in range(args.runs):
            runs.append(one_pass(refresher, args.users, args.batch) * 1000)
            print(f"pass {run + 1}: {runs[-1]:.3f} ms CPU per user", flush=True)
        print(
            f"median of {args.runs}: {statistics.median(runs):.3f} ms CPU per user "
            f"({args.items:,} items, {args.users:,} users, batches of {args.batch}, "
            f"{args.events} events, impressions of {args.shown})"
        )
        if args.new_version:
            new_version(client, keys, holder, lists, histories, args.users)
        if args.profile:
            profiler = cProfile.Profile(time.process_time)  # CPU, not wall: a shared machine
            profiler.runcall(one_pass, refresher, args.users, args.batch)
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
