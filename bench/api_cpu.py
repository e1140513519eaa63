"""CPU per GetRecommendations inside the API's service, answered from the precomputed list
against ranked for the request, side by side on the same data.

    python bench/api_cpu.py [--items 100000] [--users 5000] [--requests 2000] [--rounds 3]

Set-up as bench/serve.py's (a random 100,000-item version, item metadata through the items
processor, five events per user written in the connector's member format, every user's list
through ListRefresher, the benchmark's genre filter). Then RecommendationService.recommend,
without HTTP, for random users, plain and with the filter, in two variants built the same way:
the product as it is, and the same service with its list answer switched off (every request
ranked, as before lists were read). Rounds alternate the variants; each figure is the median
over rounds of CPU time per request (time.process_time, one BLAS thread). Starts a local
Kafka broker and redis-server unless STREAMREC_KAFKA_BOOTSTRAP and STREAMREC_REDIS_URL are
set. Prints a table; the last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve import (
    FILTER,
    FILTER_NAME,
    FILTER_VALUES,
    prepare,
    publish_version,
    put_items,
    refresh_lists,
    write_histories_direct,
)
from bench.serve_load import user_id
from bench.services import services
from connector import logs
from connector.api.requests import Limits, RecommendationsRequest, parse_recommendations
from connector.api.service import RecommendationService
from connector.api.settings import ApiSettings
from connector.filters.store import open_filters
from connector.keys import Keys
from connector.serving.current_model import ModelHolder
from connector.serving.filters import StoredFilters
from connector.serving.item_index import single_threaded_numerics
from connector.settings import ConnectorSettings
from connector.stores.model_versions import ModelStore


def service(settings: ConnectorSettings, from_lists: bool) -> RecommendationService:
    """The API's service over the group; `from_lists` False switches its list answer off."""
    api = ApiSettings(
        **{k: v for k, v in settings.model_dump().items() if k in ApiSettings.model_fields}
    )
    client = redis.Redis.from_url(api.redis_url)
    keys = Keys(api.dataset_group)
    holder = ModelHolder(ModelStore(client, keys), 60, api.serving_index_min_items)
    holder.reload()
    built = RecommendationService(
        client, api, holder, StoredFilters(open_filters(api), client, keys)
    )
    if not from_lists:
        built._from_list = lambda *_: None  # type: ignore[method-assign]
    return built


def cpu_ms(target: RecommendationService, requests: list[RecommendationsRequest]) -> float:
    """CPU milliseconds per request over `requests`."""
    started = time.process_time()
    for request in requests:
        target.recommend(request)
    return 1000 * (time.process_time() - started) / len(requests)


def main() -> None:
    logs.configure(verbose=False)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    single_threaded_numerics()
    with services() as (kafka, redis_url):
        base = ConnectorSettings(kafka_bootstrap=kafka, redis_url=redis_url)
        settings = prepare(base, f"benchapi-{uuid.uuid4().hex[:6]}")
        publish_version(settings, args.items, seed=1)
        put_items(settings, args.items)
        write_histories_direct(settings, args.users, args.items)
        refresh_lists(settings, args.users)
        open_filters(settings).create(FILTER_NAME, FILTER)
        figures = measure(settings, args)
    print(f"\nCPU ms per GetRecommendations, {args.items:,} items, median of {args.rounds} rounds")
    print(f"  {'request':<10} {'from the list':>14} {'ranked':>10} {'ratio':>7}")
    for kind in ("plain", "filter"):
        listed, ranked = figures[f"{kind}_from_lists_ms"], figures[f"{kind}_ranked_ms"]
        print(f"  {kind:<10} {listed:>14} {ranked:>10} {round(ranked / listed, 2):>7}")
    print(json.dumps(figures))


def measure(settings: ConnectorSettings, args: argparse.Namespace) -> dict[str, Any]:
    variants = {"from_lists": service(settings, True), "ranked": service(settings, False)}
    rng = random.Random(0)
    limits = Limits()
    bodies = {"plain": {}, "filter": {"filterName": FILTER_NAME, "filterValues": FILTER_VALUES}}
    samples: dict[str, list[float]] = {}
    for kind, extra in bodies.items():
        requests = [
            parse_recommendations({"userId": user_id(rng.randrange(args.users)), **extra}, limits)
            for _ in range(args.requests)
        ]
        for target in variants.values():
            target.recommend(requests[0])  # the first filtered call builds the item table
        for _ in range(args.rounds):
            for name, target in variants.items():
                samples.setdefault(f"{kind}_{name}_ms", []).append(cpu_ms(target, requests))
    figures: dict[str, Any] = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    figures.update(items=args.items, users=args.users, requests=args.requests)
    return figures


if __name__ == "__main__":
    main()
