"""How many records per second faust delivers to an agent that does nothing but ack them.

The ceiling of any faust-based consumer on this machine, measured the way the connector
consumes (`noack_take` batches, then an ack per record), so it can be set beside the
connector's figures in bench/ingest.py.

    python bench/faust_overhead.py [--records 100000]

Starts a local Kafka broker and redis-server unless STREAMREC_* are set. The last line
printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.services import services
from connector import logs
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.kafka_produce import produce


def publish(bootstrap: str, topic: str, records: int) -> None:
    """`records` small records on a 6-partition topic."""
    ensure_topics({"bootstrap.servers": bootstrap}, [TopicSpec(topic, 6)])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for n in range(records):
        produce(producer, topic, b'{"n": %d}' % n, str(n % 1000).encode())
    producer.flush(60)


def consume(bootstrap: str, topic: str, records: int, batch: int) -> float:
    """Seconds from the first record an agent sees to the last, acking each as we do."""
    app = faust.App(
        f"overhead-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
    )
    seen: dict[str, Any] = {"n": 0, "first": None, "last": None}

    @app.agent(app.topic(topic, value_serializer="raw", key_serializer="raw"))
    async def count(stream: Any) -> None:
        async for taken in stream.noack_take(batch, within=0.05):
            seen["first"] = seen["first"] or time.perf_counter()
            for event in taken:
                await stream.ack(event)
            seen["n"] += len(taken)
            if seen["n"] >= records:
                seen["last"] = time.perf_counter()
                asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(app.stop()))

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    return float(seen["last"] - seen["first"])


def main() -> None:
    logs.configure(verbose=False)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with services() as (bootstrap, _redis_url):
        topic = f"overhead-{uuid.uuid4().hex[:6]}"
        publish(bootstrap, topic, args.records)
        seconds = consume(bootstrap, topic, args.records, args.batch)
    rate = args.records / seconds
    print(f"\nfaust agent that only acks, {args.records:,} records, batches of {args.batch}")
    print(f"  {rate:,.0f} records/s  ({1e6 / rate:.0f} µs per record)")
    print(
        json.dumps(
            {
                "records": args.records,
                "faust_noop_records_per_s": round(rate),
                "us_per_record": round(1e6 / rate, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
