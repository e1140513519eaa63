"""The batch plan: pure decisions about every record and event, without servers."""

from __future__ import annotations

import json

import schemas
from connector.ingest import plan as planner
from connector.ingest.rows import decode_json
from connector.keys import Subject
from connector.records import UNDEFINED_SOURCE, BatchPlan, ServedList, SourceRecord
from connector.registry.rules import check_schema

SCHEMA = check_schema("interactions", schemas.load("interactions.avsc"))
CONTEXT = planner.PlanContext("tid", SCHEMA, decode_json)


def record(
    offset: int, session: str, events: list[dict], user: str | None = None, tracking_id: str = "tid"
) -> SourceRecord:
    body = {"trackingId": tracking_id, "sessionId": session, "eventList": events}
    if user:
        body["userId"] = user
    return SourceRecord("events", 0, offset, None, json.dumps(body).encode())


def plan(records: list[SourceRecord], served=None, links=None) -> BatchPlan:
    result = BatchPlan()
    envelopes = planner.open_envelopes(records, CONTEXT, result)
    return planner.plan_events(envelopes, CONTEXT, served or {}, links or {}, result)


def click(item: str, ts: int, **extra: object) -> dict:
    return {"eventType": "click", "itemId": item, "sentAt": ts, **extra}


def test_login_stitches_the_session_and_later_anonymous_events_follow_the_user() -> None:
    result = plan(
        [
            record(0, "s", [click("a", 1)]),
            record(1, "s", [click("b", 2)], user="alice"),
            record(2, "s", [click("c", 3)]),
        ]
    )
    assert [e.subject for e in result.accepted] == [
        Subject("s", "s"),
        Subject("u", "alice"),
        Subject("u", "alice"),
    ]
    assert [(s.session_id, s.user_id) for s in result.stitches] == [("s", "alice")]
    assert result.accepted[2].row["USER_ID"] == "alice"


def test_a_tracking_id_that_is_not_a_string_is_named_so() -> None:
    raw = json.dumps({"trackingId": 123, "sessionId": "s", "eventList": [click("a", 1)]})
    result = plan([SourceRecord("events", 0, 0, None, raw.encode())])
    assert [dead.reason for dead in result.dead] == ["trackingId must be a string, got int 123"]


def test_a_session_stitched_earlier_needs_no_new_stitch() -> None:
    result = plan([record(0, "s", [click("c", 3)])], links={"s": "alice"})
    assert result.accepted[0].subject == Subject("u", "alice") and result.stitches == []


def test_implicit_impression_comes_from_the_served_list_and_explicit_wins() -> None:
    served = {"r1": ServedList(["x", "y"], "campaign")}
    result = plan(
        [
            record(
                0,
                "s",
                [
                    click("x", 1, recommendationId="r1"),
                    click("y", 2, recommendationId="r1", impression=["y"]),
                    click("z", 3),
                ],
                user="u",
            )
        ],
        served=served,
    )
    assert [e.row["IMPRESSION"] for e in result.accepted] == ["x|y", "y", None]
    assert [e.attribution for e in result.accepted] == ["campaign", "campaign", UNDEFINED_SOURCE]


def test_explicit_attribution_source_wins_over_the_served_one() -> None:
    served = {"r1": ServedList(["x"], "campaign")}
    event = click(
        "x", 1, recommendationId="r1", metricAttribution={"eventAttributionSource": "email"}
    )
    assert plan([record(0, "s", [event], user="u")], served).accepted[0].attribution == "email"


def test_one_bad_event_of_a_record_does_not_stop_the_others() -> None:
    result = plan(
        [
            record(
                7,
                "s",
                [click("a", 1), {"eventType": "click", "sentAt": 2}, click("c", 3)],
                user="u",
            )
        ]
    )
    assert [e.event_index for e in result.accepted] == [0, 2]
    [dead] = result.dead
    assert (dead.source.offset, dead.event_index, dead.reason) == (
        7,
        1,
        "ITEM_ID is required but missing",
    )


def test_record_level_failures_are_dead_lettered_whole() -> None:
    result = plan(
        [
            record(0, "s", [click("a", 1)], tracking_id="other"),
            SourceRecord("events", 0, 1, None, None),
            record(2, "s", [click("a", 1)] * 11),
        ]
    )
    assert [(d.source.offset, d.event_index) for d in result.dead] == [
        (0, None),
        (1, None),
        (2, None),
    ]
    assert "eventList must be a list of 1 to 10 events" in result.dead[2].reason


def test_markers_ignore_event_id_for_content_but_keep_it_as_its_own_marker() -> None:
    result = plan(
        [record(0, "s", [click("a", 1, eventId="e1"), click("a", 1, eventId="e2")], user="u")]
    )
    first, second = result.accepted
    assert first.markers[0] == second.markers[0]  # same content
    assert (first.markers[1], second.markers[1]) == ("e:e1", "e:e2")


def test_history_member_is_deterministic() -> None:
    events = [click("a", 1, properties={"location": "Lima", "device": "tv"})]
    first = plan([record(0, "s", events, user="u")]).accepted[0].history_member
    again = plan([record(0, "s", events, user="u")]).accepted[0].history_member
    assert first == again
    assert json.loads(first)["context"] == {"DEVICE": "tv", "LOCATION": "Lima"}


def test_an_anonymous_event_keeps_its_marker_once_its_session_is_linked() -> None:
    """A crash replay across a login: the event first arrived before the session's login
    (marked as the session's), and comes back when the session is linked to a user; its
    marker must be the same, or the user's merged markers would not recognise it and it
    would be counted twice."""
    before = plan([record(0, "s", [click("a", 1)])]).accepted[0]
    replayed = plan([record(0, "s", [click("a", 1)])], links={"s": "alice"}).accepted[0]
    assert replayed.subject == Subject("u", "alice") != before.subject
    assert replayed.markers == before.markers
    logged_in = plan([record(0, "s", [click("a", 1)], user="alice")]).accepted[0]
    assert logged_in.markers != before.markers  # a user's own event: the user's marker
