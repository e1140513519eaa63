"""The bounds of deduplication, as docs/guarantees.md states them: markers are kept per
subject for STREAMREC_DEDUP_WINDOW_SECONDS of event time, counted back from the subject's
newest event in a batch, and at most STREAMREC_DEDUP_MAX_MARKERS per subject (the oldest
by event time dropped first); a duplicate that comes later than that is accepted again.

The in-process EventProcessor runs against the session's Kafka and Redis with a window of
100 s or a bound of 4 markers (one at a time, so each eviction has one cause), so a few
batches reach each bound. Expected markers are read from the
Interactions dataset's `streamrec.marker` headers, not computed with the product's code.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from connector.ingest.processor import BatchReport, EventProcessor
from connector.keys import Keys, Subject
from connector.settings import ConnectorSettings
from connector.wiring import event_processor
from tests.integration.helpers import decode_rows, prepare_group, put_events, read_topic
from tests.integration.test_ingest_batches import event, records

WINDOW = 100
MAX_MARKERS = 4
T = 1_700_000_000
USER = Subject("u", "u")


Send = Callable[..., BatchReport]


@pytest.fixture
def sender(settings: ConnectorSettings) -> Callable[..., Send]:
    """`sender(**limits)`: a function that sends one batch of events (one record each, user
    `u` unless given) through a processor whose settings carry `limits`."""
    tracking_id = prepare_group(settings)

    def make(**limits: int) -> Send:
        processor: EventProcessor = event_processor(settings.model_copy(update=limits))

        def send(*events: dict[str, object], user: str = "u") -> BatchReport:
            values = [put_events(tracking_id, "s", [e], user=user) for e in events]
            return processor.process(records(settings, values))

        return send

    return make


def markers_by_item(settings: ConnectorSettings) -> dict[str, str]:
    """Each appended event's content marker, by item id (items are unique in these tests)."""
    messages = read_topic(settings, settings.topics.interactions)
    rows = decode_rows(settings, messages)
    return {
        row["ITEM_ID"]: m.headers["streamrec.marker"] for row, m in zip(rows, messages, strict=True)
    }


def seen(client: redis.Redis, settings: ConnectorSettings) -> dict[str, float]:
    """The subject's dedup markers with their scores (event times)."""
    key = Keys(settings.dataset_group).seen(USER)
    return {m.decode(): score for m, score in client.zrange(key, 0, -1, withscores=True)}


def appended_items(settings: ConnectorSettings) -> list[str]:
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    return sorted(row["ITEM_ID"] for row in rows)


def test_a_duplicate_is_dropped_within_the_window_and_accepted_after_it(
    settings: ConnectorSettings, sender: Callable[..., Send], redis_db: redis.Redis
) -> None:
    """The marker bound stays at its default here, so only the window evicts."""
    send = sender(dedup_window_seconds=WINDOW)
    first = event("a", T, eventId="ev-a")
    assert send(first).appended == 1
    # Within the window: the identical event, and the same eventId with other content.
    assert (send(first).duplicates, send(event("x", T + 1, eventId="ev-a")).duplicates) == (1, 1)
    # The subject's newest event exactly one window later: `a` (at newest - window) is kept.
    assert send(event("b", T + WINDOW, eventId="ev-b")).appended == 1
    assert set(seen(redis_db, settings)) >= {markers_by_item(settings)["a"], "e:ev-a"}
    assert send(first).duplicates == 1
    # Another subject's events do not move this subject's window.
    assert send(event("z", T + 10 * WINDOW), user="other").appended == 1
    assert send(first).duplicates == 1
    # One second further: the window moves at the end of the batch, so `a` resent in the same
    # batch is still dropped, and both of its markers are gone afterwards.
    report = send(event("c", T + WINDOW + 1, eventId="ev-c"), first)
    assert (report.appended, report.duplicates) == (1, 1)
    markers = markers_by_item(settings)
    assert seen(redis_db, settings) == {
        markers["b"]: T + WINDOW,
        "e:ev-b": T + WINDOW,
        markers["c"]: T + WINDOW + 1,
        "e:ev-c": T + WINDOW + 1,
    }
    # Later than the window: accepted again, counted and appended a second time.
    again = send(first)
    assert (again.appended, again.duplicates, again.counted) == (
        1,
        0,
        [("click", "SOURCE_NAME_UNDEFINED")],
    )
    assert appended_items(settings) == ["a", "a", "b", "c", "z"]
    # It is remembered again (its batch's newest event is itself), so a third copy is dropped.
    assert seen(redis_db, settings)[markers["a"]] == T
    assert send(first).duplicates == 1


def test_the_marker_bound_evicts_the_oldest_by_event_time(
    settings: ConnectorSettings, sender: Callable[..., Send], redis_db: redis.Redis
) -> None:
    """Events without an eventId carry one marker each; five events well within the (default)
    window, four markers kept."""
    send = sender(dedup_max_markers=MAX_MARKERS)
    oldest, *newer = [event(f"i{n}", T + n) for n in range(1, 6)]
    assert send(*newer).appended == 4
    assert send(oldest).appended == 1  # arrives last but is the oldest: it is the one dropped
    markers = markers_by_item(settings)
    assert seen(redis_db, settings) == {markers[f"i{n}"]: T + n for n in range(2, 6)}
    assert send(oldest).appended == 1  # not remembered, so accepted again
    assert send(newer[0]).duplicates == 1  # the oldest kept marker still counts
    assert send(event("i6", T + 6)).appended == 1  # evicts i2 now
    assert send(newer[0]).appended == 1
    assert appended_items(settings) == ["i1", "i1", "i2", "i2", "i3", "i4", "i5", "i6"]


def test_an_event_id_is_a_second_marker_within_the_bound(
    settings: ConnectorSettings, sender: Callable[..., Send], redis_db: redis.Redis
) -> None:
    """The bound counts markers, not events: events with an eventId carry two, so only the
    newest two such events are remembered under a bound of four."""
    send = sender(dedup_max_markers=MAX_MARKERS)
    events = [event(f"i{n}", T + n, eventId=f"ev-{n}") for n in range(1, 4)]
    assert send(*events).appended == 3
    markers = markers_by_item(settings)
    assert seen(redis_db, settings) == {
        markers["i2"]: T + 2,
        "e:ev-2": T + 2,
        markers["i3"]: T + 3,
        "e:ev-3": T + 3,
    }
    assert send(events[0]).appended == 1  # its markers were evicted at the end of the batch
    assert send(event("j", T + 9, eventId="ev-2")).duplicates == 1  # ev-2 is still known


def test_a_login_keeps_the_users_window_whatever_other_users_send_in_its_batch(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    """At a login the session's markers merge into the user's; the user's window is counted
    back from the user's own newest event, not from another user's much later event that
    happens to share the batch."""
    tracking_id = prepare_group(settings)
    processor = event_processor(settings.model_copy(update={"dedup_window_seconds": WINDOW}))
    anonymous = put_events(tracking_id, "s-v", [event("a", T, eventId="anon-a")])
    assert processor.process(records(settings, [anonymous])).appended == 1
    login = put_events(tracking_id, "s-v", [event("b", T + 10)], user="v")
    later = put_events(tracking_id, "s-w", [event("c", T + 3 * WINDOW)], user="w")
    report = processor.process(records(settings, [login, later]))
    assert (report.appended, report.stitched) == (2, 2)  # both sessions meet their user
    user_seen = Keys(settings.dataset_group).seen(Subject("u", "v"))
    assert redis_db.zscore(user_seen, "e:anon-a") == T  # merged and kept
    resent = put_events(tracking_id, "s-v", [event("a2", T + 20, eventId="anon-a")], user="v")
    assert processor.process(records(settings, [resent])).appended == 0  # still a duplicate
