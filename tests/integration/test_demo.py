"""`streamrec demo` end to end, as a user runs it, on a tiny slice against the session's
services (its own dataset group): recommendations before and after the replayed events,
the live figures, and everything it started stopped again (or kept, then stopped by
`--stop`, or stopped by Ctrl-C during the replay); generated data when MovieLens cannot be
downloaded."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from connector.devservices import process
from connector.keys import Keys
from connector.stores.model_versions import ModelStore
from tests.integration.helpers import mentioning

pytestmark = [pytest.mark.slow, pytest.mark.single_redis]  # starts its own services
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
    shared.mkdir(parents=True, exist_ok=True)  # a dangling link would fail the download
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
    json_type = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=json_type)  # noqa: S310 - the demo's
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert len(json.loads(response.read())["itemList"]) == 25
    stopped = demo(["--stop"], demo_env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "stopped: worker, api, connector"
    assert not any(process.is_alive(child["pid"]) for child in state["children"])
    assert not (tmp_path / "dev" / "demo.json").exists()


def unreachable_index(env: dict[str, str]) -> dict[str, str]:
    """`env` with pip's configuration replaced by one index that refuses connections (a free
    local port), so the MovieLens download fails at once, as it does offline."""
    kept = {name: value for name, value in env.items() if not name.startswith("PIP_")}
    return {
        **kept,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": f"http://127.0.0.1:{process.free_port()}/simple",
        "PIP_RETRIES": "0",
    }


def children_of(pid: int) -> dict[int, str]:
    """The direct children of `pid`: PID -> command line."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            child = int(entry.parent.name)
            found[child] = process.command_line(child)
    return found


def test_ctrl_c_during_the_replay_stops_everything_and_exits_130(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    # an empty dataset cache and no reachable index: the demo falls back to generated data
    env = unreachable_index({**demo_env, "STREAMREC_WORKER_CACHE_DIR": str(tmp_path / "empty")})
    lines: list[str] = []
    replaying = threading.Event()
    with (tmp_path / "stderr.txt").open("w+") as stderr:
        demo = subprocess.Popen(
            ["streamrec", "demo", *TINY, "--replay-seconds", "120"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            # As from a terminal: a suite started in the background by a shell without job
            # control inherits SIGINT ignored, and so would the demo, whatever it does.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert demo.stdout is not None
        out = demo.stdout

        def read() -> None:
            for line in out:
                lines.append(line)
                if line.startswith("replaying "):
                    replaying.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert replaying.wait(300), "".join(lines) + stderr.read()
            started = children_of(demo.pid)
            dev = f"STREAMREC_DEV_DIR={env['STREAMREC_DEV_DIR']}"
            assert sorted(cmd.split("main()")[1].split()[0] for cmd in started.values()) == [
                "api", "connector", "worker",
            ]  # fmt: skip
            assert set(started) <= set(mentioning(dev))
            demo.send_signal(signal.SIGINT)
            sent = time.monotonic()
            status = demo.wait(timeout=90)
            elapsed = time.monotonic() - sent
        finally:
            if demo.poll() is None:
                demo.kill()
        reader.join(10)
        stderr.seek(0)
        errors = stderr.read()
    output = "".join(lines)
    assert "MovieLens-100K is not available (could not download the recbole==1.2.1" in output
    assert "using GENERATED data instead: the titles are made up." in output
    assert "generated: 600 items, 400 users, 3,000 ratings" in output
    assert status == 130, errors[-3000:]
    # under the 20 s a child gets between SIGTERM and SIGKILL: none had to be killed
    assert elapsed < 20, f"took {elapsed:.1f} s to stop after SIGINT"
    assert "interrupted: stopped everything the demo started" in errors
    assert "stopped the worker, api, connector" in output
    assert not any(process.is_alive(pid) for pid in started)
    assert mentioning(dev) == []
