"""`streamrec demo` end to end, as a user runs it, on a tiny slice against the session's
services (its own dataset group): recommendations before and after the replayed events,
the live figures, and everything it started stopped again (or kept, then stopped by
`--stop`)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
import redis

from connector.devservices import process
from connector.keys import Keys
from connector.stores.model_versions import ModelStore

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--max-interactions", "3000", "--replay-events", "200", "--replay-seconds", "6",
    "--epochs", "2", "--users", "2", "--api-port", "0",
]  # fmt: skip


@pytest.fixture
def demo_env(service_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The test's services and group; the worker cache in tmp, the dataset cache shared
    (MovieLens is downloaded once per checkout, not once per test)."""
    shared = REPO / ".streamrec" / "cache" / "datasets"
    shared.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "datasets").symlink_to(shared)
    return {**service_env, "STREAMREC_WORKER_CACHE_DIR": str(cache)}


def demo(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", "demo", *args], env=env, capture_output=True, text=True, timeout=600
    )


def section(output: str, title: str) -> str:
    """The lines of one `== title` section of the demo's output."""
    match = re.search(rf"^== {re.escape(title)}.*?$(.*?)(?=^== |\Z)", output, re.M | re.S)
    assert match, f"no section {title!r} in:\n{output}"
    return match.group(1)


def test_demo_shows_lists_changing_with_live_events(
    demo_env: dict[str, str], redis_db: redis.Redis
) -> None:
    result = demo(TINY, demo_env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "MovieLens-100K: 1,682 items, 943 users, 3,000 ratings" in out
    assert "rejected -> ITEM_ID is required but missing" in out
    before = section(out, "recommendations before the replay")
    after = section(out, "recommendations after the replay")
    users = re.findall(r"^user (\S+): \d+ ratings so far", before, re.M)
    assert len(users) == 2
    for user in users:
        assert re.search(rf"^user {user} rated \d+ movies live", after, re.M)
    # five titled items per list, before and after; the after lists were refreshed by events
    assert len(re.findall(r"^ {6}[1-5]\. \S", before, re.M)) >= 10
    assert len(re.findall(r"^ {6}[1-5]\. \S", after, re.M)) == 10
    assert after.count("precomputed list in Redis (one GET): 100 items") == 2
    live = section(out, "live replay")
    assert re.search(r"sent 20\d  appended \d+ events/s  lag \d+  dead letters 2  model \S+", live)
    worker = section(out, "worker")
    assert re.search(r"streamrec worker on its schedule \(:\d+/metrics\): UPDATE every", worker)
    # the worker did not train during the demo: the only version is the demo's own FULL
    versions = ModelStore(redis_db, Keys(demo_env["STREAMREC_DATASET_GROUP"])).versions()
    assert len(versions) == 1
    assert "stopped the worker, api, connector" in out
    assert redis_db.exists(f"streamrec:{demo_env['STREAMREC_DATASET_GROUP']}:model:current")


def test_keep_running_leaves_the_api_up_until_stop(
    demo_env: dict[str, str], redis_db: redis.Redis, tmp_path: Path
) -> None:
    result = demo([*TINY, "--generated", "--keep-running"], demo_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "using GENERATED data" not in result.stdout  # asked for, not a fallback
    assert result.stdout.count("top 5 from POST /recommendations") == 4
    state = json.loads((tmp_path / "dev" / "demo.json").read_text())
    assert [child["name"] for child in state["children"]] == ["connector", "api", "worker"]
    url, body = f"{state['api']}/recommendations", json.dumps({"userId": "1"}).encode()
    request = urllib.request.Request(url, data=body)  # noqa: S310 - the demo's own API
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert len(json.loads(response.read())["itemList"]) == 25
    stopped = demo(["--stop"], demo_env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "stopped: worker, api, connector"
    assert not any(process.is_alive(child["pid"]) for child in state["children"])
    assert not (tmp_path / "dev" / "demo.json").exists()
