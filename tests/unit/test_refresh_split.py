"""How a batch's subjects are shared out between list refresh processes."""

from __future__ import annotations

from connector.serving.refresh_process import _split


def test_a_batch_is_split_into_contiguous_nearly_equal_chunks_none_empty() -> None:
    tags = [f"t{n}" for n in range(7)]
    assert _split(tags, 2) == [tags[:4], tags[4:]]
    assert _split(tags, 3) == [tags[:3], tags[3:6], tags[6:]]
    assert _split(tags[:1], 4) == [tags[:1]]  # fewer subjects than processes
    assert sum(_split(tags, 5), []) == tags
