"""`streamrec import` publishes CSV rows through the ingest path (and with --wait returns
once the connector has stored them); `streamrec metrics` reads the counters that path keeps."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connector.devservices.process import free_port
from connector.keys import Keys, Subject
from connector.settings import ConnectorSettings
from connector.wiring import event_processor, processors
from tests.integration.helpers import prepare_group, source_records


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_import_interactions_then_metrics(
    settings: ConnectorSettings, service_env: dict[str, str], tmp_path: Path
) -> None:
    prepare_group(settings)
    csv_file = tmp_path / "ratings.csv"
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"]
    lines += [f"u{n % 7},i{n},{1_700_000_000 + n},rating,{n % 5 + 1}" for n in range(120)]
    lines += ["u1,,1700000500,rating,3", "u2,i9,never,rating,1"]
    csv_file.write_text("\n".join(lines) + "\n")
    result = run(["import", "interactions", str(csv_file)], service_env)
    assert result.returncode == 0, result.stderr
    assert "published 122 rows" in result.stdout and "120 pass the checks" in result.stdout
    assert "TIMESTAMP must be long, got str 'never'" in result.stdout
    report = event_processor(settings).process(source_records(settings, settings.topics.events))
    assert (report.appended, report.dead) == (120, 2)
    shown = run(["metrics", "--as-json", "--last", "100"], service_env)
    buckets = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sum(b["by_type"].get("rating", 0) for b in buckets) == 120
    assert sum(b["by_source"].get("SOURCE_NAME_UNDEFINED", 0) for b in buckets) == 120


def test_import_items(
    settings: ConnectorSettings, service_env: dict[str, str], tmp_path: Path
) -> None:
    prepare_group(settings)
    csv_file = tmp_path / "items.csv"
    rows = [f"m{n},Title {n},{1_600_000_000 + n},Drama|War" for n in range(25)]
    csv_file.write_text("ITEM_ID,TITLE,CREATION_TIMESTAMP,GENRES\n" + "\n".join(rows) + "\n")
    result = run(["import", "items", str(csv_file)], service_env)
    assert result.returncode == 0, result.stderr
    assert "25 pass the checks" in result.stdout
    report = processors(settings).items.process(source_records(settings, settings.topics.items))
    assert (report.upserted, report.dead) == (25, 0)


@pytest.fixture
def running_connector(
    settings: ConnectorSettings, service_env: dict[str, str], tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A `streamrec connector` process of the test's group (its schemas and tracker ready)."""
    prepare_group(settings)
    env = {**service_env, "STREAMREC_CONNECTOR_WEB_PORT": str(free_port())}
    with (tmp_path / "connector.log").open("wb") as log:
        child = subprocess.Popen(
            ["streamrec", "connector"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    yield child
    child.kill()
    child.wait(30)


def test_import_wait_returns_once_the_connector_has_stored_the_rows(
    settings: ConnectorSettings,
    service_env: dict[str, str],
    tmp_path: Path,
    redis_db: redis.Redis,
    running_connector: subprocess.Popen[bytes],
) -> None:
    keys = Keys(settings.dataset_group)
    items = tmp_path / "items.csv"
    rows = [f"m{n},Title {n},{1_600_000_000 + n},Drama" for n in range(25)]
    items.write_text("ITEM_ID,TITLE,CREATION_TIMESTAMP,GENRES\n" + "\n".join(rows) + "\n")
    result = run(["import", "items", str(items), "--wait"], service_env)
    assert result.returncode == 0, result.stderr
    assert "the connector has processed the 3 records published" in result.stdout
    assert all(redis_db.exists(keys.item(f"m{n}")) for n in range(25))

    ratings = tmp_path / "ratings.csv"
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"]
    lines += [f"u{n % 7},m{n % 25},{1_700_000_000 + n},rating,4" for n in range(120)]
    lines += ["u2,m9,never,rating,1"]  # dead-lettered: processed all the same
    ratings.write_text("\n".join(lines) + "\n")
    result = run(["import", "interactions", str(ratings), "--wait"], service_env)
    assert result.returncode == 0, result.stderr
    assert "the connector has processed the 121 records published" in result.stdout
    stored = sum(redis_db.zcard(keys.history(Subject("u", f"u{n}"))) for n in range(7))
    assert stored == 120
    assert running_connector.poll() is None


def test_import_wait_times_out_with_one_clear_line(
    settings: ConnectorSettings, service_env: dict[str, str], tmp_path: Path
) -> None:
    prepare_group(settings)  # and no connector running
    items = tmp_path / "items.csv"
    items.write_text("ITEM_ID,TITLE\n" + "\n".join(f"m{n},T{n}" for n in range(12)) + "\n")
    result = run(["import", "items", str(items), "--wait", "--timeout", "2"], service_env)
    assert result.returncode == 1
    assert "published 12 rows" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: timed out after 2 s: 2 of the 2 records published are not processed yet. They "
        "are in Kafka and will be stored once `streamrec connector` of dataset group "
        f"'{settings.dataset_group}' catches up; is it running? (`streamrec status` shows "
        "its lag)"
    ]
    assert "Traceback" not in result.stderr
