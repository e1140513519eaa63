"""The load generator of bench/serve.py, run as its own process so that its CPU use and its
event loop are not the measured service's.

    python bench/serve_load.py redis URL GROUP USERS RATE SECONDS
    python bench/serve_load.py http URL GROUP USERS RATE SECONDS [FILTER_JSON]
    python bench/serve_load.py events URL GROUP USERS RATE SECONDS '{"trackingId": T, "events": 10}'
    python bench/serve_load.py kafka BOOTSTRAP TOPIC USERS RATE SECONDS '{"trackingId": T, ...}'

Open loop: request n is sent at start + n / RATE whatever happened to the ones before, so a
slow answer cannot lower the offered load (no coordinated omission in the rate). Each
latency is measured around one request as the client sees it: for `redis` a GET of a random
user's precomputed list plus its JSON parse, for `http` a POST /recommendations and reading
its body, for `events` a POST /events of a PutEvents request of N events (answered once the
broker has it), and for `kafka` the same request as one record sent by an idempotent
producer straight to the topic, until its delivery report. The first WARM_UP_SECONDS are
sent but not counted. Prints one JSON object:
{"latencies_ms": [...], "errors": n, "error_sample": "...", "sent": n, "seconds": s,
"max_lag_ms": how late the generator sent its most delayed request}.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.keys import Keys, Subject

WARM_UP_SECONDS = 1.0


def user_id(index: int) -> str:
    """The id of the benchmark's user number `index`."""
    return f"user-{index}"


def redis_load(url: str, group: str, users: int, rate: int, seconds: float) -> dict[str, Any]:
    """GET + parse of random users' lists at `rate` per second, one connection."""
    client = redis.Redis.from_url(url)
    keys = Keys(group)
    rng = random.Random(11)
    total = int(rate * (seconds + WARM_UP_SECONDS))
    targets = [
        keys.recommendations(Subject("u", user_id(rng.randrange(users)))) for _ in range(total)
    ]
    latencies: list[float] = []
    errors, sample, max_lag = 0, "", 0.0
    start = time.perf_counter()
    for n, key in enumerate(targets):
        due = start + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        try:
            raw = client.get(key)
            if raw is None:
                raise LookupError(f"no list at {key}")
            document = orjson.loads(raw)
            if not document["itemList"]:
                raise LookupError(f"empty list at {key}")
        except (redis.RedisError, LookupError) as exc:
            errors, sample = errors + 1, sample or str(exc)
            continue
        done = time.perf_counter()
        if due - start >= WARM_UP_SECONDS:
            latencies.append((done - sent) * 1000)
            max_lag = max(max_lag, sent - due)
    return _result(latencies, errors, sample, total, time.perf_counter() - start, max_lag)


def put_events_body(rng: random.Random, users: int, tracking_id: str, events: int) -> bytes:
    """A PutEvents request of `events` click events of a random user, each with its own id."""
    user = user_id(rng.randrange(users))
    now = int(time.time())
    event_list = [
        {
            "eventId": f"{rng.getrandbits(64):016x}",
            "eventType": "click",
            "itemId": f"item-{rng.randrange(1000)}",
            "sentAt": now,
        }
        for _ in range(events)
    ]
    body = {"trackingId": tracking_id, "userId": user, "sessionId": f"s-{user}"}
    return orjson.dumps({**body, "eventList": event_list})


def kafka_load(
    bootstrap: str, topic: str, users: int, rate: int, seconds: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """PutEvents records produced straight to `topic` at `rate` per second, open loop; each
    latency from produce() to its delivery report."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2}
    )
    rng = random.Random(12)
    total = int(rate * (seconds + WARM_UP_SECONDS))
    latencies: list[float] = []
    failures: list[str] = []
    max_lag = 0.0
    start = time.perf_counter()

    def report(due: float, sent: float) -> Any:
        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))
            elif due - start >= WARM_UP_SECONDS:
                latencies.append((time.perf_counter() - sent) * 1000)

        return delivered

    for n in range(total):
        due = start + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            producer.poll(wait)
        body = put_events_body(rng, users, extra["trackingId"], extra["events"])
        sent = time.perf_counter()
        producer.produce(topic, body, body[:16], on_delivery=report(due, sent))
        producer.poll(0)
        if due - start >= WARM_UP_SECONDS:
            max_lag = max(max_lag, sent - due)
    producer.flush(60)
    sample = failures[0] if failures else ""
    return _result(latencies, len(failures), sample, total, time.perf_counter() - start, max_lag)


async def http_load(
    url: str, group: str, users: int, rate: int, seconds: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """POST /recommendations for random users at `rate` per second, open loop; with
    `extra["events"]` set, POST /events of PutEvents requests of that many events."""
    del group  # the API serves one group; kept so every mode takes the same arguments
    rng = random.Random(12)
    events = extra.pop("events", None)
    tracking_id = extra.pop("trackingId", "")
    total = int(rate * (seconds + WARM_UP_SECONDS))
    latencies: list[float] = []
    failures: list[str] = []
    lags: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()

        async def one(due: float, body: bytes) -> None:
            sent = time.perf_counter()
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    payload = await response.read()
                    if response.status != 200:
                        failures.append(f"{response.status} {payload[:200]!r}")
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(repr(exc))
                return
            if due - start >= WARM_UP_SECONDS:
                latencies.append((time.perf_counter() - sent) * 1000)
                lags.append(sent - due)

        tasks = []
        for n in range(total):
            due = start + n / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            if events is None:
                body = orjson.dumps({"userId": user_id(rng.randrange(users)), **extra})
            else:
                body = put_events_body(rng, users, tracking_id, events)
            tasks.append(asyncio.create_task(one(due, body)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    sample = failures[0] if failures else ""
    return _result(latencies, len(failures), sample, total, elapsed, max(lags, default=0.0))


def _result(
    latencies: list[float], errors: int, sample: str, sent: int, seconds: float, lag: float
) -> dict[str, Any]:
    return {
        "latencies_ms": [round(value, 4) for value in latencies],
        "errors": errors,
        "error_sample": sample,
        "sent": sent,
        "seconds": round(seconds, 3),
        "max_lag_ms": round(lag * 1000, 2),
    }


def main() -> None:
    mode, url, group, users, rate, seconds = sys.argv[1:7]
    if mode == "redis":
        result = redis_load(url, group, int(users), int(rate), float(seconds))
    elif mode == "kafka":
        extra = json.loads(sys.argv[7])
        result = kafka_load(url, group, int(users), int(rate), float(seconds), extra)
    else:
        extra = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
        result = asyncio.run(http_load(url, group, int(users), int(rate), float(seconds), extra))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
