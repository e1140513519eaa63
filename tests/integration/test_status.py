"""`streamrec status` as a user runs it: one screen with the services, the group's topics
with the connector's lag, the served model, throughput and dead letters."""

from __future__ import annotations

import re
import subprocess

import redis

from connector.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.wiring import event_processor
from tests.integration.helpers import prepare_group, put_events


def status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "status"], env=env, capture_output=True, text=True, timeout=120
    )


def test_status_shows_topics_lag_dead_letters_and_throughput(
    settings: ConnectorSettings, redis_db: redis.Redis, service_env: dict[str, str]
) -> None:
    tracking_id = prepare_group(settings)
    processor = event_processor(settings)
    good = {"eventType": "click", "itemId": "i1", "sentAt": 1_700_000_000}
    records = [put_events(tracking_id, f"s{n}", [good], user=f"u{n}") for n in range(3)]
    records.append(put_events(tracking_id, "s9", [{"eventType": "click", "sentAt": 1}]))
    batch = [
        SourceRecord(settings.topics.events, 0, n, b"k", value) for n, value in enumerate(records)
    ]
    assert processor.process(batch).dead == 1
    result = status(service_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"Kafka\s+\S+\s+answers", out) and re.search(r"Redis\s+\S+\s+answers", out)
    assert re.search(rf"{settings.topics.interactions}\s+3\s*$", out, re.M)
    assert "dead letters: 1 (latest: ITEM_ID is required but missing)" in out
    assert "model: none published yet" in out
    assert re.search(r"2023-11-14 22:13\s+3 events\s+0\.1/s\s+click=3", out)


def test_status_fails_when_a_service_does_not_answer(service_env: dict[str, str]) -> None:
    env = {**service_env, "STREAMREC_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = status(env)
    assert result.returncode == 1
    assert re.search(r"Redis\s+redis://127\.0\.0\.1:1/0\s+DOES NOT ANSWER", result.stdout)
    assert "streamrec dev up" in result.stderr
