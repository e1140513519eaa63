"""The dashboard in headless Chromium against a running demo, as a user would open it.

`streamrec demo --keep-running` runs on a small MovieLens slice in this test's dataset group
(connector, API and worker stay up); one event naming a served recommendationId is sent
through the events topic, so attribution has a source besides "undefined". Then Debian's
chromium, driven by Playwright, opens /dashboard: every panel must show the figures of this
run (read here from Kafka and Redis, not from the page's own endpoints), the user explorer
must show the user's new event and ten titled recommendations, and a screenshot is saved
(to docs/dashboard.png too when STREAMREC_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from confluent_kafka import Producer
from playwright.sync_api import Page, sync_playwright

from connector.keys import Keys, Subject
from connector.settings import ConnectorSettings
from connector.stores.counters import recent_buckets
from connector.stores.model_versions import ModelStore
from connector.topic_state import connector_lag, topic_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--max-interactions", "3000", "--replay-events", "200", "--replay-seconds", "6",
    "--epochs", "2", "--users", "2", "--api-port", "0",
]  # fmt: skip
WINDOW = 60  # buckets the page asks for


def chromium() -> str:
    """Debian's chromium (bash .ci/setup installs it); the test fails, not skips, without."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("no chromium on PATH: run `bash .ci/setup` (apt-get install chromium)")
    return found


@pytest.fixture
def demo(service_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A kept-running demo of this test's group: its output, API URL and environment;
    stopped afterwards (`streamrec demo --stop`)."""
    shared = REPO / ".streamrec" / "cache" / "datasets"
    shared.mkdir(parents=True, exist_ok=True)  # a dangling link would fail the download
    shared.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "datasets").symlink_to(shared)
    env = {**service_env, "STREAMREC_WORKER_CACHE_DIR": str(tmp_path / "cache")}
    try:
        run = subprocess.run(
            ["streamrec", "demo", *TINY, "--keep-running"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        state = json.loads((tmp_path / "dev" / "demo.json").read_text())
        yield {"out": run.stdout, "api": state["api"]}
    finally:
        subprocess.run(["streamrec", "demo", "--stop"], env=env, capture_output=True, timeout=120)


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def attributed_click(settings: ConnectorSettings, demo: dict[str, Any], user: str) -> str:
    """The user clicks the first item the API served them, naming its recommendationId,
    through the events topic and the running connector; the item clicked."""
    served = post(f"{demo['api']}/recommendations", {"userId": user, "numResults": 5})
    item = str(served["itemList"][0]["itemId"])
    tracker = re.search(r"^event tracker (\S+)", demo["out"], re.M)
    assert tracker, demo["out"]
    event = {
        "eventType": "click",
        "itemId": item,
        "sentAt": int(time.time()),
        "recommendationId": served["recommendationId"],
    }
    record = {"trackingId": tracker.group(1), "userId": user, "sessionId": f"demo-{user}"}
    producer = Producer(settings.kafka_config())
    producer.produce(settings.topics.events, json.dumps({**record, "eventList": [event]}))
    assert producer.flush(10) == 0
    return item


def wait_for(check: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def window_totals(client: redis.Redis, keys: Keys, width: int) -> tuple[dict[str, int], ...]:
    """Events per type and per source in the page's window, straight from the counters."""
    found = recent_buckets(client, keys, WINDOW)
    start = found[-1].bucket - width * (WINDOW - 1)
    types: dict[str, int] = {}
    sources: dict[str, int] = {}
    for bucket in (b for b in found if b.bucket >= start):
        for name, n in bucket.by_type.items():
            types[name] = types.get(name, 0) + n
        for name, n in bucket.by_source.items():
            sources[name] = sources.get(name, 0) + n
    return types, sources


def text(page: Page, selector: str) -> str:
    return page.locator(selector).first.inner_text().strip()


def test_dashboard_shows_the_runs_data_and_a_users_recommendations(
    settings: ConnectorSettings, redis_db: redis.Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    users = re.findall(r"^user (\S+): \d+ ratings so far", demo["out"], re.M)
    user = users[0]
    clicked = attributed_click(settings, demo, user)
    keys = Keys(settings.dataset_group)
    wait_for(lambda: connector_lag(settings) == 0)
    history = cast(list[bytes], redis_db.zrange(keys.history(Subject("u", user)), -1, -1))
    assert json.loads(history[0])["item"] == clicked
    types, sources = window_totals(redis_db, keys, settings.metrics_bucket_seconds)
    assert sources.get("streamrec-api") == 1 and types.get("rating", 0) > 0
    dead = topic_records(settings, settings.topics.deadletter)
    interactions = topic_records(settings, settings.topics.interactions)
    store = ModelStore(redis_db, keys)
    version = store.current_version()
    assert version is not None
    meta = store.meta(version)
    stored_title = cast(bytes | None, redis_db.hget(keys.item(clicked), "TITLE"))
    assert stored_title is not None
    title = stored_title.decode()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}"))
            page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
            page.goto(f"{demo['api']}/dashboard")
            page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
            assert text(page, "#problem") == "" or not page.locator("#problem").is_visible()

            # event rate by type: a line per type, legend counts from the counters
            for name, count in types.items():
                legend = text(page, f'#events-legend [data-type="{name}"]')
                assert legend == f"{name}: {count:,} events"
            lines = page.locator("#events-chart polyline")
            assert lines.count() == len(types)
            points = lines.first.get_attribute("points") or ""
            heights = {point.split(",")[1] for point in points.split()}
            assert len(heights) > 1  # the rate varies over the window: not a flat placeholder

            # attribution by source
            for name, count in sources.items():
                assert text(page, f'.bar[data-source="{name}"] .count').startswith(f"{count:,} (")

            # consumer lag and the group's topics
            assert text(page, "#lag-total") == "0"
            row = f'#topics tr[data-topic="{settings.topics.interactions}"] td:nth-child(2)'
            assert text(page, row) == f"{interactions:,}"

            # dead letters: the demo's two rejected examples, with their reasons
            assert text(page, "#dead-count") == f"{dead:,}" and dead == 2
            reasons = page.locator("#dead-latest tbody tr").all_inner_texts()
            assert len(reasons) == 2
            assert any("ITEM_ID is required but missing" in r for r in reasons)

            # model versions: the current one with its training time and offline metrics
            current = page.locator(f'#models tr[data-version="{version}"]')
            assert current.get_attribute("class") == "current"
            cells = current.locator("td").all_inner_texts()
            assert cells[3] == f"{_to_fixed(meta['training_seconds'], '0.1')} s"
            assert cells[6] == f"{meta['metrics']['ndcg@10']:.4f}"

            # user explorer: the new event, ten titled recommendations, the change
            page.fill("#search-id", user)
            page.click("#search button")
            recs = page.locator("#subject-recs li[data-item]")
            recs.nth(9).wait_for(timeout=30_000)  # locators: the page's CSP forbids eval
            assert recs.count() == 10
            first_event = text(page, "#subject-events tbody tr")
            assert "click" in first_event and title in first_event
            for n in range(recs.count()):
                entry = recs.nth(n)
                shown = entry.locator(".title").inner_text()
                assert shown != entry.get_attribute("data-item")  # a title, not just an id
            assert page.locator("#subject-change li[data-item]").count() == 10
            assert version in text(page, "#subject-stored")
            assert title in text(page, "#change-event")

            assert not errors, errors
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("STREAMREC_UPDATE_SCREENSHOT") == "1":
                shutil.copyfile(shot, REPO / "docs" / "dashboard.png")
        finally:
            browser.close()


def _to_fixed(value: float, step: str) -> Decimal:
    """`value` as JavaScript's toFixed shows it: the exact binary value rounded half up
    (Python's format rounds an exact tie such as 0.25 to even)."""
    return Decimal(value).quantize(Decimal(step), rounding=ROUND_HALF_UP)
