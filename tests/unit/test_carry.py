"""What batch n+1 takes from batch n in flight (connector/ingest/carry.py): n's markers as its
apply leaves them, n's stitches where Redis holds no other link, and each stitched session's
markers as its user's. The integration test test_pipelined_batches.py shows the same against
real Redis and Kafka."""

from __future__ import annotations

from connector.ingest import carry
from connector.ingest.carry import Carried
from connector.keys import Subject
from connector.records import AcceptedEvent, SourceRecord, Stitch

SOURCE = SourceRecord("g.events", 0, 0, None, b"{}")


def accepted(subject: Subject, ts: int, *markers: str) -> AcceptedEvent:
    return AcceptedEvent(SOURCE, 0, subject, "s", {"TIMESTAMP": ts}, markers, "m", "click", "x")


def test_markers_the_apply_trims_out_of_the_window_are_not_carried() -> None:
    u, v = Subject("u", "u"), Subject("u", "v")
    events = [accepted(u, 100, "f:old", "e:1"), accepted(u, 200, "f:new"), accepted(v, 50, "f:v")]
    carried = Carried.of(events, [], window=100)
    assert carried.markers == {(u.tag, "f:old"), (u.tag, "e:1"), (u.tag, "f:new"), (v.tag, "f:v")}
    assert Carried.of(events, [], window=99).markers == {(u.tag, "f:new"), (v.tag, "f:v")}


def test_a_stitch_links_and_merges_unless_redis_holds_another_link() -> None:
    previous = Carried(frozenset(), {"s1": "alice", "s2": "bob", "s3": "carol"})
    stored = {"s2": "someone-else", "s3": "carol"}  # s3: batch n's apply already ran
    sessions = carry.sessions_to_look_up({"s1", "s2", "s9"}, previous)
    assert sessions == {"s1", "s2", "s3", "s9"}
    links, before = carry.resolve({"s1", "s2", "s9"}, stored, previous)
    assert links == {"s1": "alice", "s2": "someone-else"}
    assert before.tags(Subject("u", "alice")) == ("{u:alice}", Subject("s", "s1").tag)
    assert before.tags(Subject("u", "bob")) == ("{u:bob}",)  # s2 stays with its first user
    assert before.tags(Subject("u", "carol")) == ("{u:carol}", Subject("s", "s3").tag)
    assert before.tags(Subject("s", "alice")) == ("{s:alice}",)


def test_the_first_stitch_of_a_session_in_a_batch_is_the_one_carried() -> None:
    carried = Carried.of([], [Stitch("s", "first"), Stitch("s", "second")], window=10)
    assert carried.links == {"s": "first"}


def test_nothing_in_flight_carries_nothing() -> None:
    links, before = carry.resolve({"s"}, {"s": "u"}, None)
    assert links == {"s": "u"}
    assert before.markers == frozenset()
    assert before.tags(Subject("u", "u")) == ("{u:u}",)
