"""`streamrec import` publishes CSV rows through the ingest path; `streamrec metrics` reads
the counters that path keeps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from connector.ingest.records import SourceRecord
from connector.settings import ConnectorSettings
from connector.wiring import event_processor, processors
from tests.integration.helpers import prepare_group, read_topic


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["streamrec", *args], env=env, capture_output=True, text=True, timeout=300
    )


def consumed(settings: ConnectorSettings, topic: str) -> list[SourceRecord]:
    return [
        SourceRecord(topic, m.partition, m.offset, m.key, m.value)
        for m in read_topic(settings, topic)
    ]


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
    report = event_processor(settings).process(consumed(settings, settings.topics.events))
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
    report = processors(settings).items.process(consumed(settings, settings.topics.items))
    assert (report.upserted, report.dead) == (25, 0)
