"""The soak benchmark's API client: GetRecommendations at a steady rate, from its own process
so its CPU and event loop are not the API's nor the event producer's.

    python bench/soak_load.py URL USERS QPS SECONDS START_AT OUT_FILE

Open loop: request n is sent at START_AT + n / QPS (Unix time) whatever happened to earlier
ones, so a slow API cannot lower the offered load. Users are drawn uniformly from
user-0 .. user-(USERS-1), so both users with long histories and users with none are asked
for. Writes OUT_FILE as JSON: {"requests": [[sent_at, latency_ms, status], ...],
"error_samples": [...], "max_lag_ms": ...}; status 0 is a request that got no response
(connection error or the client's timeout).
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

CLIENT_TIMEOUT_SECONDS = 10.0
MAX_ERROR_SAMPLES = 20


async def load(url: str, users: int, qps: float, seconds: float, start_at: float) -> dict[str, Any]:
    """Send int(qps * seconds) requests; every request's (sent_at, latency_ms, status)."""
    rng = random.Random(21)
    requests: list[list[float]] = []
    samples: list[str] = []
    lags: list[float] = [0.0]
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=128)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(body: bytes) -> None:
            sent_wall, sent = time.time(), time.perf_counter()
            status, detail = 0, ""
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    payload = await response.read()
                    status = response.status
                    if status != 200 or not orjson.loads(payload).get("itemList"):
                        detail = f"{status} {payload[:200]!r}"
                        status = status if status != 200 else 299  # 299: an empty list
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = repr(exc)
            requests.append(
                [round(sent_wall, 3), round((time.perf_counter() - sent) * 1000, 3), status]
            )
            if detail and len(samples) < MAX_ERROR_SAMPLES:
                samples.append(detail)

        tasks = []
        await asyncio.sleep(max(0.0, start_at - time.time()))
        for n in range(int(qps * seconds)):
            due = start_at + n / qps
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                lags.append(-wait)
            body = orjson.dumps({"userId": f"user-{rng.randrange(users)}", "numResults": 25})
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    return {"requests": requests, "error_samples": samples, "max_lag_ms": max(lags) * 1000}


def main() -> None:
    url, users, qps, seconds, start_at, out = sys.argv[1:7]
    result = asyncio.run(load(url, int(users), float(qps), float(seconds), float(start_at)))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
