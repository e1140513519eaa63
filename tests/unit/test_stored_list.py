"""The precomputed list's stored form and the history fingerprint the API compares it by."""

from __future__ import annotations

import orjson

from connector.model.history import history_digest
from connector.stores.lists import ListEncoder, ListTerms, StoredList


def test_a_list_round_trips_with_its_terms_and_explored_positions() -> None:
    terms = ListTerms(history_digest([b'{"item":"a"}']), None, 0.3, 30.0)
    stored = StoredList("v1", 1_700_000_000_000, [("a", 0.5), ("b", 0.25)], frozenset({1}), terms)
    raw = stored.to_json()
    assert StoredList.from_json(raw) == stored
    entries = orjson.loads(raw)["itemList"]
    assert entries == [
        {"itemId": "a", "score": 0.5},
        {"itemId": "b", "score": 0.25, "reason": ["Exploration"]},
    ]


def test_a_list_written_before_terms_existed_still_reads() -> None:
    old = b'{"version":"v0","updated":1,"itemList":[{"itemId":"x","score":1.0}]}'
    listed = StoredList.from_json(old)
    assert (listed.terms, listed.explored, listed.items) == (None, frozenset(), [("x", 1.0)])


def test_the_digest_changes_with_any_member_and_with_their_order() -> None:
    members = [b'{"item":"a","ts":1}', b'{"item":"b","ts":2}']
    assert history_digest(members) == history_digest([m.decode() for m in members])
    assert history_digest(members) != history_digest(members[::-1])
    assert history_digest(members) != history_digest(members[:1])
    assert history_digest(members) != history_digest([members[0] + members[1]])


def test_the_encoder_writes_byte_for_byte_what_to_json_writes() -> None:
    ids = ["a", 'quo"te', "uni\u00e9\u4e2d", "back\\slash", "ctrl\x01", "plain"]
    encoder = ListEncoder(ids)
    terms = ListTerms("digest", "no-purchases", 0.3, 30.0)
    columns, scores = [4, 0, 2, 5], [0.5, 0.125, 1e-06, 0.0]
    for explored, listed_terms in ((set(), None), ({0, 3}, terms), ({1}, terms)):
        stored = StoredList(
            "v9",
            123,
            [(ids[c], s) for c, s in zip(columns, scores, strict=True)],
            frozenset(explored),
            listed_terms,
        )
        encoded = encoder.encode("v9", 123, listed_terms, columns, scores, sorted(explored))
        assert encoded == stored.to_json()
        assert StoredList.from_json(encoded) == stored
    empty = StoredList("v9", 123, [], frozenset(), terms)
    assert encoder.encode("v9", 123, terms, [], [], []) == empty.to_json()
