"""Replaying the held-back events as live PutEvents, in time order, at a chosen speed.

Event times are compressed by `speed` (dataset seconds per wall-clock second); each event is
sent when its turn comes, stamped with the wall-clock time it is sent (so the counters, the
histories and the lists see it as happening now). Imported history is shifted the same way
beforehand (`shift_rows`), so the whole dataset ends where the replay begins.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Producer

from connector.kafka_produce import produce
from connector.settings import ConnectorSettings

Row = dict[str, str]


@dataclass(frozen=True)
class Schedule:
    """Which held-back rows are sent, and when (seconds after the replay starts)."""

    rows: list[Row]
    offsets: list[float]
    speed: float

    @classmethod
    def plan(cls, held_back: list[Row], seconds: float, speed: float | None) -> Schedule:
        """The rows that fit in `seconds` at `speed`; by default the speed that plays the
        whole held-back slice in `seconds`."""
        if not held_back:
            return cls([], [], speed or 1.0)
        first = int(held_back[0]["TIMESTAMP"])
        span = int(held_back[-1]["TIMESTAMP"]) - first
        chosen = speed or max(span / max(seconds, 1e-3), 1.0)
        offsets = [(int(row["TIMESTAMP"]) - first) / chosen for row in held_back]
        kept = sum(1 for offset in offsets if offset <= seconds)
        return cls(held_back[:kept], offsets[:kept], chosen)

    def users(self, count: int, imported: Counter[str], min_history: int = 3) -> list[str]:
        """The `count` users with the most replayed events among those with some history;
        any replayed users when none has enough history."""
        replayed = Counter(row["USER_ID"] for row in self.rows)
        known = [user for user, _ in replayed.most_common() if imported[user] >= min_history]
        return (known or [user for user, _ in replayed.most_common()])[:count]


def shift_rows(rows: list[Row], shift: int) -> list[Row]:
    """Copies of `rows` with TIMESTAMP moved by `shift` seconds."""
    return [{**row, "TIMESTAMP": str(int(row["TIMESTAMP"]) + shift)} for row in rows]


def put_events(row: Row, tracking_id: str, sent_at: int) -> bytes:
    """One rating as a PutEvents record."""
    event = {
        "eventType": row.get("EVENT_TYPE") or "rating",
        "itemId": row["ITEM_ID"],
        "sentAt": sent_at,
    }
    if row.get("EVENT_VALUE"):
        event["eventValue"] = float(row["EVENT_VALUE"])
    record = {
        "trackingId": tracking_id,
        "userId": row["USER_ID"],
        "sessionId": f"demo-{row['USER_ID']}",
        "eventList": [event],
    }
    return json.dumps(record).encode()


def replay(
    settings: ConnectorSettings,
    schedule: Schedule,
    tracking_id: str,
    tick: Callable[[int, float], None],
    tick_every: float = 5.0,
) -> int:
    """Send the scheduled rows on time; call `tick(sent, elapsed)` every `tick_every`
    seconds and once at the end. Returns how many were sent."""
    producer = Producer({**settings.kafka_config(), "linger.ms": 5})
    started = time.monotonic()
    next_tick = tick_every
    sent = 0
    for row, offset in zip(schedule.rows, schedule.offsets, strict=True):
        while (elapsed := time.monotonic() - started) < offset or elapsed >= next_tick:
            if elapsed >= next_tick:
                producer.flush(10)
                tick(sent, elapsed)
                next_tick += tick_every
                continue
            producer.poll(0)
            time.sleep(min(0.05, offset - elapsed))
        value = put_events(row, tracking_id, int(time.time()))
        produce(producer, settings.topics.events, value, row["USER_ID"].encode())
        sent += 1
    producer.flush(30)
    tick(sent, time.monotonic() - started)
    return sent
