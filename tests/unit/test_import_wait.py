"""`streamrec import --wait`: the offsets an import wrote, and waiting for the connector's
consumer group to commit past them."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, KafkaException

from connector.bulk_import import ImportSummary
from connector.cli import cli, importer
from connector.topic_state import uncommitted_between


def test_the_summary_keeps_the_offsets_written_per_partition() -> None:
    summary = ImportSummary(topic="events")
    for partition, offset in [(0, 7), (1, 3), (0, 8), (0, 9), (1, 4)]:
        summary.delivered(partition, offset)
    assert summary.offsets == {0: (7, 10), 1: (3, 5)}
    assert summary.records == 5


@pytest.mark.parametrize(
    ("committed", "behind"),
    [(-1001, 3), (0, 3), (7, 3), (8, 2), (10, 0), (12, 0)],
)
def test_records_not_committed_among_the_ones_written(committed: int, behind: int) -> None:
    # records at offsets 7, 8, 9; the committed offset is the next one the group reads
    assert uncommitted_between(committed, 7, 10) == behind


def test_waits_until_nothing_is_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "_POLL_SECONDS", 0)
    answers = iter([5, KafkaException(KafkaError(KafkaError._TRANSPORT)), 3, 0])
    calls = []

    def behind() -> int:
        calls.append(1)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert importer.wait_for_connector(behind, 5, 60, "the connector") >= 0
    assert len(calls) == 4


def test_gives_up_after_the_timeout_with_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "_POLL_SECONDS", 0.01)
    with pytest.raises(click.ClickException) as raised:
        importer.wait_for_connector(lambda: 4, 10, 0.05, "`streamrec connector`")
    assert raised.value.message.startswith(
        "timed out after 0.05 s: 4 of the 10 records published are not processed yet. They "
        "are in Kafka and will be stored once `streamrec connector` catches up"
    )


def test_timeout_without_wait_is_refused(tmp_path: Path) -> None:
    rows = tmp_path / "items.csv"
    rows.write_text("ITEM_ID\ni1\n")
    cli.add_command(importer.import_csv, "import")
    result = CliRunner().invoke(cli, ["import", "items", str(rows), "--timeout", "5"])
    assert result.exit_code == 2
    assert "--timeout applies to --wait only: add --wait" in result.stderr
