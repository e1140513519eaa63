"""The model store's layout without a server: key names, chunk planning, exact byte round trips.

Why: the keys and the manifest are a public contract (docs/redis-keys.md) that other
services read directly, and the chunking must give back exactly what was published.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from connector.exceptions import ModelNotFoundError
from connector.keys import Keys
from connector.model.artifacts import ModelArtifacts, with_padding_row
from connector.stores.model_layout import (
    ArrayLayout,
    Manifest,
    _array_parts,
    _Assembly,
    _encode_meta,
    _id_parts,
    new_version_id,
    plan,
)


def test_model_keys_are_namespaced_and_escaped() -> None:
    keys = Keys("shop")
    assert keys.model_current == "streamrec:shop:model:current"
    assert keys.model_versions == "streamrec:shop:model:versions"
    assert keys.model_channel == "streamrec:shop:model:announce"
    assert keys.model_manifest("v1") == "streamrec:shop:model:v:v1:manifest"
    assert keys.model_meta("v1") == "streamrec:shop:model:v:v1:meta"
    assert keys.model_ids("v1", 3) == "streamrec:shop:model:v:v1:ids:3"
    assert keys.model_chunk("v1", "item_embeddings", 0) == (
        "streamrec:shop:model:v:v1:array:item_embeddings:0"
    )
    assert (
        keys.model_chunk("a:{b}*", "x y", 1)
        == "streamrec:shop:model:v:a%3A%7Bb%7D%2A:array:x%20y:1"
    )


def test_version_ids_sort_by_time_and_differ() -> None:
    start = datetime(2025, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC)
    times = [start + timedelta(microseconds=step) for step in (0, 1, 10**6, 10**9)]
    ids = [new_version_id(moment) for moment in times]
    assert ids == sorted(ids)
    assert ids[0].startswith("20250101T235959.999999Z-")
    assert new_version_id(start) != new_version_id(start)


def _artifacts(items: int = 10, dim: int = 8) -> ModelArtifacts:
    return ModelArtifacts(
        [f"i{n}" for n in range(items)],
        {
            "item_embeddings": np.arange(items * dim, dtype=np.float32).reshape(items, dim),
            "item_bias": np.arange(items, dtype=np.float64),
            "gru_weights": np.ones((3, 4, 5), dtype=np.float32),
        },
        {"metrics": {"ndcg_at_10": 0.125, "hr_at_10": 1, "note": "x", "flag": True}},
    )


def test_plan_chunks_item_arrays_by_bytes_and_keeps_others_whole() -> None:
    manifest = plan("v", _artifacts(items=10, dim=8), 1.5, chunk_bytes=100)
    embeddings = manifest.arrays["item_embeddings"]
    assert embeddings == ArrayLayout("<f4", (10, 8), 3)  # 32-byte rows, 3 per 100 bytes
    assert embeddings.chunks == 4
    assert manifest.arrays["item_bias"].chunk_rows == 12
    assert manifest.arrays["gru_weights"] == ArrayLayout("<f4", (3, 4, 5), None)
    assert manifest.arrays["gru_weights"].chunks == 1
    assert manifest.metrics == {"ndcg_at_10": 0.125, "hr_at_10": 1.0}
    assert not manifest.complete


def test_manifest_round_trips_through_json() -> None:
    manifest = plan("v", _artifacts(), 1.5, chunk_bytes=64)
    assert Manifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize(
    "array",
    [
        np.arange(50, dtype=">f4").reshape(10, 5),  # big-endian: stored little-endian
        np.arange(30, dtype=np.int64).reshape(10, 3)[:, ::2],  # not contiguous
        np.zeros((0, 4), dtype=np.float32),  # no items
        np.array([True, False] * 5),
    ],
)
def test_chunks_give_back_the_exact_values(array: np.ndarray) -> None:
    items = [str(n) for n in range(len(array))]
    layout = plan("v", ModelArtifacts(items, {"item_x": array}), 0.0, 16).arrays["item_x"]
    parts = list(_array_parts(array, layout))
    assert len(parts) == layout.chunks
    for padded in (False, True):
        back = _assembled(layout, parts, padded)
        assert back.shape == array.shape and np.array_equal(back, array)
        assert back.dtype == array.dtype.newbyteorder("<") and back.flags.writeable


def _assembled(layout: ArrayLayout, parts: list[bytes], padded: bool = False) -> np.ndarray:
    assembly = _Assembly(layout, "test", padded)
    for part in parts:
        assembly.add(part)
    return assembly.finish()


def test_a_padded_item_array_becomes_the_models_table_without_a_copy() -> None:
    array = np.arange(12, dtype=np.float32).reshape(6, 2)
    layout = plan("v", ModelArtifacts(list("abcdef"), {"item_x": array}), 0.0, 16).arrays["item_x"]
    back = _assembled(layout, list(_array_parts(array, layout)), padded=True)
    table = with_padding_row(back)
    assert np.shares_memory(table, back) and table.shape == (7, 2)
    assert not table[0].any() and np.array_equal(table[1:], array)


def test_an_array_of_other_origin_gets_its_padding_row_in_a_copy() -> None:
    array = np.arange(1, 13, dtype=np.float32).reshape(6, 2)
    for source in (array, array[1:], np.concatenate([np.ones((1, 2), np.float32), array])[1:]):
        table = with_padding_row(source)
        assert not np.shares_memory(table, source) and not table[0].any()
        assert np.array_equal(table[1:], source)


def test_a_missing_or_short_chunk_is_refused() -> None:
    array = np.arange(12, dtype=np.float32).reshape(6, 2)
    layout = plan("v", ModelArtifacts(list("abcdef"), {"item_x": array}), 0.0, 16).arrays["item_x"]
    parts = list(_array_parts(array, layout))
    with pytest.raises(ModelNotFoundError, match="damaged"):
        _assembled(layout, parts[:-1])
    with pytest.raises(ModelNotFoundError, match="damaged"):
        _assembled(layout, [*parts[:-1], parts[-1][:-1]])
    with pytest.raises(ModelNotFoundError, match="damaged"):
        _assembled(layout, [*parts, b"\0"])


def test_item_ids_are_chunked_in_order() -> None:
    ids = [f"id:{n}" for n in range(6)] + ['quote " and \u00e9']
    parts = [json.loads(part) for part in _id_parts(ids, 3)]
    assert [len(part) for part in parts] == [3, 3, 1]
    assert [item for part in parts for item in part] == ids


def test_meta_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON-serialisable"):
        _encode_meta({"when": object()})
    assert json.loads(_encode_meta({"a": [1, 2.5, "x", None]})) == {"a": [1, 2.5, "x", None]}


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        (ModelArtifacts(["a", "a"], {}), "unique"),
        (ModelArtifacts(["a", "b"], {"item_x": np.zeros(3)}), "one row per item"),
        (ModelArtifacts(["a"], {"item_x": np.float32(1.0).reshape(())}), "one row per item"),
        (ModelArtifacts(["a"], {"names": np.array(["x"], dtype=object)}), "only numeric"),
    ],
)
def test_artifacts_that_cannot_round_trip_are_refused(
    artifacts: ModelArtifacts, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan("v", artifacts, 0.0, 1024)
