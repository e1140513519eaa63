"""The HTTP API against the real Redis and broker, through a real HTTP server.

Histories are written the way production writes them (PutEvents through the connector's
event processor); models are tiny but really trained and published through ModelStore, so
the app loads them the way `streamrec api` does, following announcements.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import count
from typing import Any

import pytest
import redis
from aiohttp import web

from connector.api.app import HOLDER, create_app
from connector.api.settings import ApiSettings
from connector.devservices.process import free_port
from connector.filters.store import open_filters
from connector.ingest.processor import EventProcessor
from connector.keys import Keys, Subject
from connector.model.artifacts import ModelArtifacts
from connector.model.history import HistoryEntry, parse_member
from connector.model.model import Hyperparameters, Model
from connector.records import SourceRecord
from connector.redis_client import open_url
from connector.serving.filters import ITEM_TABLE
from connector.settings import CommonSettings, ConnectorSettings
from connector.stores.lists import RecommendationLists
from connector.stores.model_versions import ModelStore
from connector.stores.served import RedisServedLists
from connector.wiring import event_processor, processors
from tests.integration.helpers import prepare_group, put_events
from worker.data.interactions import Interactions, from_rows
from worker.training.fit import train
from worker.training.pipeline import Catalog, item_arrays
from worker.training.update import add_items

T0 = 1_700_000_000
POPULAR = {"p0", "p1"}  # every training user clicks these first
COLD = [f"n{k}" for k in range(12)]  # in the catalogue, never interacted with
_offsets = count()
# Served by brute force (the default threshold is far above this catalogue) and with the
# item index (every catalogue indexed), which large catalogues use.
INDEXED = pytest.mark.parametrize("index_min_items", [50_000, 1], ids=["brute-force", "index"])


# --- a tiny trained model, shared by the module -------------------------------------------


def training_rows() -> list[dict[str, Any]]:
    """40 users: p0 and p1, then 8 steps along a chain of 30 items (i0 -> i1 -> ...)."""
    rows = []
    for user in range(40):
        items = ["p0", "p1"] + [f"i{(3 * user + step) % 30}" for step in range(8)]
        for step, item in enumerate(items):
            ts = T0 + 100 * user + step
            rows.append(
                {"USER_ID": f"u{user}", "ITEM_ID": item, "TIMESTAMP": ts, "EVENT_TYPE": "click"}
            )
    return rows


@pytest.fixture(scope="module")
def trained() -> tuple[Model, Interactions]:
    data = from_rows(training_rows())
    return train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=3), seed=7), data


def artifacts(trained: tuple[Model, Interactions], new_items: Sequence[str] = ()) -> ModelArtifacts:
    """The trained model, with `new_items` added as items without interactions, created
    at the newest interaction (new: exploration may pick them)."""
    model, data = trained
    if new_items:
        model, _ = add_items(model, data, list(new_items))
    created: dict[str, int | None] = dict.fromkeys(new_items, int(data.timestamp.max()))
    return model.to_artifacts(item_arrays(model, data, Catalog(list(new_items), created, {})))


def publish(settings: CommonSettings, version: ModelArtifacts) -> str:
    store = ModelStore(open_url(settings.redis_url), Keys(settings.dataset_group))
    return store.publish(version, keep=2)


# --- the connector path and a real HTTP server --------------------------------------------


class Events:
    """PutEvents through the connector's real event processor."""

    def __init__(self, settings: ConnectorSettings, tracking_id: str | None = None) -> None:
        self.settings = settings
        self.tracking_id = tracking_id or prepare_group(settings)
        self.processor: EventProcessor = event_processor(settings)

    def send(self, session: str, items: list[str], user: str | None = None, **extra: Any) -> None:
        events = [
            {"eventType": "click", "itemId": item, "sentAt": T0 + 10_000 + next(_offsets), **extra}
            for item in items
        ]
        value = put_events(self.tracking_id, session, events, user)
        record = SourceRecord(self.settings.topics.events, 0, next(_offsets), b"k", value)
        report = self.processor.process([record])
        assert (report.appended, report.dead) == (len(items), 0)


class Server:
    """The app on 127.0.0.1 in an event loop of its own thread; plain blocking HTTP calls."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(app, access_log=None)
        self.base = ""

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def __enter__(self) -> Server:
        self._thread.start()
        self._run(self._runner.setup())
        self._run(web.TCPSite(self._runner, "127.0.0.1", 0).start())
        host, port = self._runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def call(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """Status and decoded body (JSON when it is JSON); POST when a body is given."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.base + path, data=data, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def ok(self, path: str, body: Any) -> dict[str, Any]:
        status, answer = self.call(path, body)
        assert status == 200, answer
        return dict(answer)

    def ids(self, body: dict[str, Any]) -> list[str]:
        return [entry["itemId"] for entry in self.ok("/recommendations", body)["itemList"]]


def api_settings(settings: CommonSettings, **overrides: Any) -> ApiSettings:
    common = {name: getattr(settings, name) for name in CommonSettings.model_fields}
    return ApiSettings(**{**common, "exploration_weight": 0.0, **overrides})


@contextmanager
def serving(settings: CommonSettings, **overrides: Any) -> Iterator[Server]:
    with Server(create_app(api_settings(settings, **overrides))) as server:
        yield server


def eventually(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def history(redis_db: redis.Redis, group: str, subject: Subject) -> list[HistoryEntry]:
    return [parse_member(m) for m in redis_db.zrange(Keys(group).history(subject), 0, -1)]


# --- tests ---------------------------------------------------------------------------------


def test_503_before_any_model_then_ready_without_a_restart(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    with serving(settings, api_model_poll_seconds=0.5) as api:
        assert api.call("/healthz") == (200, {"status": "ok"})
        status, answer = api.call("/readyz")
        assert (status, answer["status"]) == (503, "not ready")
        status, answer = api.call("/recommendations", {"userId": "u1"})
        assert status == 503
        assert "no model version is published" in answer["message"]
        version = publish(settings, artifacts(trained))
        eventually(
            lambda: api.call("/readyz") == (200, {"status": "ready", "modelVersion": version})
        )
        assert len(api.ids({"userId": "u1", "numResults": 5})) == 5


def test_a_new_version_is_served_without_a_restart(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    publish(settings, artifacts(trained))
    with serving(settings) as api:
        body = {"userId": "u1", "inputList": ["z-new", "i1", "i2"]}
        first = api.ok("/personalize-ranking", body)["personalizedRanking"]
        assert first[-1] == {"itemId": "z-new", "score": 0.0}  # unknown to v1: last, score 0
        version = publish(settings, artifacts(trained, ["z-new"]))

        def known() -> bool:
            ranking = api.ok("/personalize-ranking", body)["personalizedRanking"]
            return {entry["itemId"]: entry["score"] for entry in ranking}["z-new"] > 0

        eventually(known)  # the announcement reloaded the holder, no restart
        assert api.app[HOLDER].current is not None
        assert api.app[HOLDER].current.version == version


@INDEXED
def test_known_user_gets_a_personal_list_without_what_they_did(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    index_min_items: int,
) -> None:
    events = Events(settings)
    publish(settings, artifacts(trained))
    events.send("s-alice", ["i3", "i4", "i5"], user="alice")
    with serving(settings, serving_index_min_items=index_min_items) as api:
        answer = api.ok("/recommendations", {"userId": "alice", "numResults": 10})
        personal = [entry["itemId"] for entry in answer["itemList"]]
        scores = [entry["score"] for entry in answer["itemList"]]
        popular = api.ids({"userId": "nobody", "numResults": 10})
    assert len(personal) == 10 and not {"i3", "i4", "i5"} & set(personal)
    assert set(popular[:2]) == POPULAR  # no history: the most popular items first
    assert personal != popular
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6


def test_once_the_group_has_a_filter_a_version_is_served_with_its_item_table_built(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    publish(settings, artifacts(trained))
    with serving(settings) as api:
        holder = api.app[HOLDER]
        assert holder.current is not None and ITEM_TABLE not in holder.current.derived
        open_filters(settings).create("no-x", 'EXCLUDE ItemID WHERE Items.GENRES IN ("x")')
        # A transaction's commit marker may reach the topic just after create returns.
        eventually(lambda: bool(open_filters(settings).list()))
        version = publish(settings, artifacts(trained, ["z-new"]))
        eventually(lambda: holder.current is not None and holder.current.version == version)
        assert ITEM_TABLE in holder.current.derived  # built before the swap, not on request
        assert len(holder.current.derived[ITEM_TABLE].ids) == len(holder.current.model.items)


@INDEXED
def test_a_new_users_first_event_turns_popular_items_into_personal_ones(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    index_min_items: int,
) -> None:
    events = Events(settings)
    publish(settings, artifacts(trained))
    with serving(settings, serving_index_min_items=index_min_items) as api:
        before = api.ids({"userId": "bob", "numResults": 10})
        events.send("s-bob", ["i7"], user="bob")
        after = api.ids({"userId": "bob", "numResults": 10})
    assert set(before[:2]) == POPULAR
    assert after != before and "i7" not in after


def test_an_anonymous_session_then_login_keeps_personal_results(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    events = Events(settings)
    publish(settings, artifacts(trained))
    events.send("sess-1", ["i10", "i11"])
    with serving(settings) as api:
        popular = api.ids({"sessionId": "other", "numResults": 8})
        anonymous = api.ids({"sessionId": "sess-1", "numResults": 8})
        events.send("sess-1", ["i12"], user="carol")  # login: the session is stitched
        as_user = api.ids({"userId": "carol", "numResults": 8})
        as_session = api.ids({"sessionId": "sess-1", "numResults": 8})
    assert anonymous != popular and not {"i10", "i11"} & set(anonymous)
    assert not {"i10", "i11", "i12"} & set(as_user)  # the anonymous events count for carol
    assert as_session == as_user  # a stitched session is served as its user


def test_served_lists_are_stored_and_give_implicit_impressions(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    events = Events(settings)
    publish(settings, artifacts(trained))
    with serving(settings, api_attribution_source="home-page") as api:
        answer = api.ok("/recommendations", {"userId": "dora", "numResults": 6})
        ranking = api.ok("/personalize-ranking", {"userId": "dora", "inputList": ["i1", "i2"]})
    rid, items = answer["recommendationId"], [e["itemId"] for e in answer["itemList"]]
    assert rid != ranking["recommendationId"]
    lists = RedisServedLists(redis_db, Keys(settings.dataset_group))
    found = lists.get_many({rid, ranking["recommendationId"]})
    assert found[rid].items == items and found[rid].source == "home-page"
    assert sorted(found[ranking["recommendationId"]].items) == ["i1", "i2"]
    assert 0 < redis_db.ttl(Keys(settings.dataset_group).served(rid)) <= 7 * 24 * 3600
    events.send("s-dora", [items[2]], user="dora", recommendationId=rid)
    (entry,) = history(redis_db, settings.dataset_group, Subject("u", "dora"))
    assert list(entry.impression) == items  # the connector read the list served here


def test_served_lists_are_bounded_per_request_and_per_subject(
    settings: ConnectorSettings, redis_db: redis.Redis, wide: tuple[Model, Interactions]
) -> None:
    """Issue 17: every answer was stored whole for 7 days, however many a caller asked for."""
    publish(settings, artifacts(wide))
    keys = Keys(settings.dataset_group)
    with serving(settings, api_served_per_subject=5) as api:
        ids = [
            api.ok("/recommendations", {"userId": "eve", "numResults": 300})["recommendationId"]
            for _ in range(8)
        ]
        anonymous = api.ok("/recommendations", {"sessionId": "s-x", "numResults": 10})
    found = RedisServedLists(redis_db, keys).get_many(set(ids))
    assert sorted(found) == sorted(ids[-5:])  # the newest five of eve's; older ones deleted
    assert all(len(served.items) == 25 for served in found.values())  # an impression's worth
    assert [redis_db.exists(keys.served(rid)) for rid in ids[:3]] == [0, 0, 0]
    assert redis_db.llen(keys.served_by(Subject("u", "eve"))) == 5
    assert redis_db.llen(keys.served_by(Subject("s", "s-x"))) == 1
    assert anonymous["recommendationId"] in RedisServedLists(redis_db, keys).get_many(
        {anonymous["recommendationId"]}
    )


@INDEXED
def test_exploration_weight_zero_and_one(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    index_min_items: int,
) -> None:
    publish(settings, artifacts(trained, COLD))
    body = {"userId": "u4", "numResults": 10}
    indexed = {"serving_index_min_items": index_min_items}
    with serving(settings, exploration_weight=0.0, **indexed) as api:
        exploit = api.ok("/recommendations", body)["itemList"]
    with serving(settings, exploration_weight=1.0, **indexed) as api:
        explore = api.ok("/recommendations", body)["itemList"]
    assert not {entry["itemId"] for entry in exploit} & set(COLD)
    assert all("reason" not in entry for entry in exploit)
    cold = [entry for entry in explore if entry["itemId"] in COLD]
    assert len(cold) >= 8
    assert all(entry["reason"] == ["Exploration"] for entry in cold)


def test_promotion_filters_and_metadata(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    prepare_group(settings)
    items = [{"itemId": "i3", "properties": {"title": "Heat", "genres": "Action|Crime"}}]
    items += [{"itemId": item, "properties": {"genres": "New"}} for item in COLD]
    records = [  # PutItems takes at most 10 items per call
        SourceRecord(
            settings.topics.items, 0, n, b"k", json.dumps({"items": items[n : n + 10]}).encode()
        )
        for n in range(0, len(items), 10)
    ]
    assert processors(settings).items.process(records).dead == 0
    filters = open_filters(settings)  # real named filters, as `streamrec filters create` makes
    filters.create("fresh-only", 'INCLUDE ItemID WHERE Items.GENRES IN ("New")')
    filters.create("no-fresh", 'EXCLUDE ItemID WHERE Items.GENRES IN ("New")')
    publish(settings, artifacts(trained, COLD))
    app = create_app(api_settings(settings))
    with Server(app) as api:
        body = {
            "userId": "u1",
            "numResults": 10,
            "filterName": "no-fresh",
            "promotions": [
                {"name": "fresh", "percentPromotedItems": 30, "filterName": "fresh-only"}
            ],
        }
        listed = api.ok("/recommendations", body)["itemList"]
        status, refused = api.call("/recommendations", {**body, "filterName": "nope"})
        ranked = api.ok(
            "/personalize-ranking",
            {
                "userId": "u1",
                "inputList": ["i3", "i4"],
                "metadataColumns": {"ITEMS": ["TITLE", "GENRES"]},
            },
        )["personalizedRanking"]
    promoted = [entry for entry in listed if "promotionName" in entry]
    assert len(listed) == 10 and len({entry["itemId"] for entry in listed}) == 10
    assert len(promoted) == 3 and all(e["itemId"].startswith("n") for e in promoted)
    assert all(e["promotionName"] == "fresh" and e["reason"] == ["Promoted item"] for e in promoted)
    assert [e["score"] for e in promoted] == sorted((e["score"] for e in promoted), reverse=True)
    assert all(e["itemId"] not in COLD for e in listed if e not in promoted)  # no-fresh
    assert status == 404 and refused["message"].endswith("has no filter 'nope'")
    metadata = {entry["itemId"]: entry["metadata"] for entry in ranked}
    assert metadata == {"i3": {"TITLE": "Heat", "GENRES": "Action|Crime"}, "i4": {}}


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/recommendations", {"numResults": 5}, 400, "userId or sessionId is required"),
        (
            "/recommendations",
            {"userId": "u", "numResults": 0},
            400,
            "numResults must be an integer from 1 to 500",
        ),
        (
            "/recommendations",
            {"userId": "u", "numResults": 501},
            400,
            "numResults must be an integer from 1 to 500",
        ),
        ("/recommendations", {"userId": 7}, 400, "userId must be a string"),
        ("/recommendations", [1], 400, "the request body must be a JSON object"),
        ("/recommendations", {"userId": "u", "filterName": "x"}, 404, "has no filter 'x'"),
        (
            "/personalize-ranking",
            {"userId": "u", "inputList": ["i"] * 501},
            400,
            "inputList must be a list of 1 to 500",
        ),
        ("/nowhere", {"userId": "u"}, 404, "no such route: POST /nowhere"),
        ("/healthz", {"userId": "u"}, 405, "POST is not allowed on /healthz"),
    ],
)
def test_bad_requests_get_a_clear_json_error(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    path: str,
    body: Any,
    status: int,
    message: str,
) -> None:
    publish(settings, artifacts(trained))
    with serving(settings) as api:
        answered, answer = api.call(path, body)
    assert answered == status
    assert set(answer) == {"__type", "message"} and message in answer["message"]


# Requests answered on the event loop (the default) and in a pool of threads.
THREADS = pytest.mark.parametrize("threads", [0, 2], ids=["event-loop", "thread-pool"])


@THREADS
def test_malformed_oversized_and_slow_requests(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    threads: int,
) -> None:
    publish(settings, artifacts(trained))
    with serving(settings, api_max_body_bytes=2048) as api:
        status, answer = api.call("/recommendations", raw=b'{"userId": ')
        assert status == 400 and answer["message"].startswith("the request body is not valid JSON")
        status, answer = api.call("/recommendations", {"userId": "u" * 4000})
        too_large = "the request body is larger than 2048 bytes"
        assert (status, answer["message"]) == (413, too_large)
        assert answer["__type"] == "RequestEntityTooLargeException"
    with serving(settings, api_request_timeout_seconds=1e-9, api_threads=threads) as api:
        # Head and body in one write, so the deadline passes in the service, not while the
        # body is still on its way (that is a 408: test_sizes_are_refused_at_once_...).
        body = b'{"userId": "u1"}'
        _, raw = exchange(api.base, post_head(f"Content-Length: {len(body)}\r\n") + body)
        answer = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        assert status_of(raw) == 503 and "did not complete within" in answer["message"]
        assert "Traceback" not in json.dumps(answer)


def exchange(base: str, request: bytes, half_close: bool = False) -> tuple[float, bytes]:
    """Send raw bytes to the server; the seconds until it answered (or closed) and all it
    sent back until it closed the connection or 30 s passed."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received, answered = b"", None
        try:
            while chunk := sock.recv(65536):
                answered = answered or time.monotonic()
                received += chunk
                if received.count(b"\r\n\r\n") >= 1 and received.rstrip().endswith(b"}"):
                    break  # a whole JSON answer: the connection may linger for the body
        except ConnectionResetError:
            pass
    return (answered or time.monotonic()) - started, received


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def post_head(extra: str, content_type: str = "application/json") -> bytes:
    return (
        f"POST /recommendations HTTP/1.1\r\nHost: api\r\nContent-Type: {content_type}\r\n"
        f"{extra}\r\n"
    ).encode()


def test_sizes_are_refused_at_once_and_a_short_body_is_not_a_503(
    settings: ConnectorSettings, redis_db: redis.Redis
) -> None:
    """Issue 17: a declared 10 GB body held the connection for the whole request timeout and
    got 503; `Expect: 100-continue` with 50 MB got `100 Continue`; a body shorter than its
    Content-Length got 503 after the timeout."""
    with serving(settings, api_max_body_bytes=2048, api_request_timeout_seconds=2.0) as api:
        seconds, answer = exchange(api.base, post_head("Content-Length: 10000000000\r\n"))
        assert status_of(answer) == 413 and seconds < 1.0, answer
        assert b"the request body is larger than 2048 bytes" in answer
        expect = "Expect: 100-continue\r\nContent-Length: 50000000\r\n"
        seconds, answer = exchange(api.base, post_head(expect))
        assert b"100 Continue" not in answer and status_of(answer) == 413 and seconds < 1.0
        seconds, answer = exchange(api.base, post_head(expect, "text/plain"))
        assert b"100 Continue" not in answer and status_of(answer) == 415 and seconds < 1.0
        short = post_head("Content-Length: 100\r\n") + b'{"userId": '
        seconds, answer = exchange(api.base, short)
        assert status_of(answer) == 408 and 1.5 < seconds < 5, (seconds, answer)
        assert b"the request body did not arrive within 2 s (Content-Length says 100" in answer
        exchange(api.base, short, half_close=True)  # closed early: nothing can be answered
        fitting = "Expect: 100-continue\r\nContent-Length: 16\r\n"
        seconds, answer = exchange(api.base, post_head(fitting))
        assert answer.startswith(b"HTTP/1.1 100 Continue"), answer  # within limits: go on
        _, metrics = api.call("/metrics")
    assert 'status="500"' not in metrics and 'status="503"' not in metrics


def test_a_post_must_be_json(settings: ConnectorSettings, redis_db: redis.Redis) -> None:
    """A browser's cross-site "simple" POST (text/plain, a form) cannot set this type."""
    body = b'{"userId": "u1"}'
    with serving(settings) as api:
        answers = {}
        for content_type in ("", "text/plain", "application/x-www-form-urlencoded"):
            head = f"Content-Type: {content_type}\r\n" if content_type else ""
            request = (
                f"POST /recommendations HTTP/1.1\r\nHost: api\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            _, answer = exchange(api.base, request + body)
            message = json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"]
            answers[content_type] = (status_of(answer), message)
        status, _ = api.call("/recommendations", {"userId": "u1"})  # JSON: past the check
    assert answers == {
        "": (415, "Content-Type must be application/json, got none"),
        "text/plain": (415, "Content-Type must be application/json, got text/plain"),
        "application/x-www-form-urlencoded": (
            415,
            "Content-Type must be application/json, got application/x-www-form-urlencoded",
        ),
    }
    assert status == 503  # no model is published here: answered by the service, not refused


@INDEXED
def test_a_list_made_from_the_current_history_is_the_answer_and_a_stale_one_is_not(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    index_min_items: int,
) -> None:
    publish(settings, artifacts(trained))
    tuned = settings.model_copy(update={"serving_index_min_items": index_min_items})
    events = Events(tuned)  # the connector's processor: lists refreshed after each batch
    quiet = Events(tuned.model_copy(update={"lists_enabled": False}), events.tracking_id)
    lists = RecommendationLists(redis_db, Keys(settings.dataset_group), 3600)
    erin = Subject("u", "erin")
    events.send("s-erin", ["i3"], user="erin")  # the version is loaded: the list is written
    stored = lists.read(erin)
    assert stored is not None
    same_terms = {
        "exploration_weight": settings.lists_exploration_weight,
        "exploration_item_age_cut_off": settings.lists_exploration_item_age_cut_off_days,
        "serving_index_min_items": index_min_items,
    }
    with serving(settings, **same_terms) as api:
        answer = api.ok("/recommendations", {"userId": "erin", "numResults": 10})
        served = [(entry["itemId"], entry["score"]) for entry in answer["itemList"]]
        reasons = [entry.get("reason") for entry in answer["itemList"]]
        top = stored.items[0][0]
        quiet.send("s-erin", [top], user="erin")  # recorded, the list not refreshed
        after = api.ids({"userId": "erin", "numResults": 10})
        filtered = {"userId": "erin", "numResults": 10, "filterName": "missing"}
        assert api.call("/recommendations", filtered)[0] == 404  # not from the list: refused
        _, text = api.call("/metrics")
    assert served == stored.items[:10]  # the precomputed list, as stored
    explored = [n for n in range(10) if n in stored.explored]
    assert [n for n, reason in enumerate(reasons) if reason] == explored
    assert all(reason == ["Exploration"] for reason in reasons if reason)
    assert top not in after  # the stale list still holds it; ranking excludes what was seen
    assert 'streamrec_api_recommendations_total{source="precomputed"} 1.0' in text
    assert 'streamrec_api_recommendations_total{source="ranked"} 1.0' in text


@THREADS
def test_a_filtered_request_is_answered_from_the_allowed_entries_of_a_current_list(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    trained: tuple[Model, Interactions],
    threads: int,
) -> None:
    publish(settings, artifacts(trained))
    events = Events(settings.model_copy(update={"lists_exploration_weight": 0.0}))
    events.send("s-gil", ["i3"], user="gil")
    stored = RecommendationLists(redis_db, Keys(settings.dataset_group), 3600).read(
        Subject("u", "gil")
    )
    assert stored is not None
    odd = [item for item, _ in stored.items[0:6:2]]  # entries 0, 2 and 4
    rows = {"items": [{"itemId": item, "properties": {"genres": "Odd"}} for item in odd]}
    record = SourceRecord(settings.topics.items, 0, 0, b"k", json.dumps(rows).encode())
    assert processors(settings).items.process([record]).dead == 0
    open_filters(settings).create("no-odd", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Odd")')
    with serving(settings, exploration_weight=0.0, api_threads=threads) as api:
        body = {"userId": "gil", "numResults": 5, "filterName": "no-odd"}
        answer = api.ok("/recommendations", body)["itemList"]
        _, text = api.call("/metrics")
    kept = [(item, score) for item, score in stored.items if item not in odd][:5]
    assert [entry["itemId"] for entry in answer] == [item for item, _ in kept]
    ratios = [entry["score"] / score for entry, (_, score) in zip(answer, kept, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)  # one renormalisation for all
    assert ratios[0] > 1.0  # over fewer items than the unfiltered list's softmax
    assert 'streamrec_api_recommendations_total{source="precomputed"} 1.0' in text


def test_a_list_under_other_terms_is_not_the_answer(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    publish(settings, artifacts(trained))
    events = Events(settings)
    lists = RecommendationLists(redis_db, Keys(settings.dataset_group), 3600)
    fay = Subject("u", "fay")
    events.send("s-fay", ["i5"], user="fay")
    assert lists.read(fay) is not None
    with serving(settings, exploration_weight=0.0) as api:  # the lists explore with 0.3
        answer = api.ok("/recommendations", {"userId": "fay", "numResults": 10})
        _, text = api.call("/metrics")
    assert not any("reason" in entry for entry in answer["itemList"])  # weight 0: no explored
    assert 'streamrec_api_recommendations_total{source="ranked"} 1.0' in text
    assert 'source="precomputed"' not in text


def test_metrics_count_requests_by_route_and_status(
    settings: ConnectorSettings, redis_db: redis.Redis, trained: tuple[Model, Interactions]
) -> None:
    publish(settings, artifacts(trained))
    with serving(settings) as api:
        for _ in range(3):
            api.ok("/recommendations", {"userId": "u1", "numResults": 3})
        api.call("/recommendations", {"numResults": 3})
        _, text = api.call("/metrics")
    assert 'streamrec_api_requests_total{route="/recommendations",status="200"} 3.0' in text
    assert 'streamrec_api_requests_total{route="/recommendations",status="400"} 1.0' in text
    assert 'streamrec_api_request_seconds_count{route="/recommendations",status="200"} 3.0' in text


def test_streamrec_api_serves_and_stops_on_sigterm(service_env: dict[str, str]) -> None:
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        ["streamrec", "api", "--port", str(port)],
        env=service_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api = Server.__new__(Server)
        api.base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return api.call("/healthz") == (200, {"status": "ok"})
            except urllib.error.URLError:
                return False

        eventually(up)
        assert api.call("/readyz")[0] == 503
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if server.poll() is None:
            server.kill()


# --- a user's whole history, not only the model's window ------------------------------------

WIDE = 400  # catalogue of the heavy-user tests: more items than any history window


@pytest.fixture(scope="module")
def wide() -> tuple[Model, Interactions]:
    """A small model over WIDE items (80 users walking a chain of them)."""
    rows = [
        {"USER_ID": f"w{u}", "ITEM_ID": f"i{(5 * u + s) % WIDE}", "TIMESTAMP": T0 + 100 * u + s}
        for u in range(80)
        for s in range(12)
    ]
    data = from_rows(rows)
    return train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=1), seed=5), data


def send_many(events: Events, user: str, items: list[str]) -> None:
    """The user's events on `items`, in PutEvents calls of at most 10 (Personalize's limit)."""
    for start in range(0, len(items), 10):
        events.send(f"s-{user}", items[start : start + 10], user=user)


@INDEXED
def test_a_user_with_300_rated_items_never_gets_one_of_them_back(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    wide: tuple[Model, Interactions],
    index_min_items: int,
) -> None:
    publish(settings, artifacts(wide))
    tuned = settings.model_copy(update={"serving_index_min_items": index_min_items})
    events = Events(tuned)
    rated = [f"i{n}" for n in range(300)]
    send_many(events, "heavy", rated)
    open_filters(settings).create(
        "no-clicked", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    )
    stored = RecommendationLists(redis_db, Keys(settings.dataset_group), 3600).read(
        Subject("u", "heavy")
    )
    with serving(tuned, exploration_weight=0.3) as api:
        answer = api.ids({"userId": "heavy", "numResults": 100})
        ranking = api.ok(
            "/personalize-ranking",
            {
                "userId": "heavy",
                "inputList": [f"i{n}" for n in range(280, 320)],
                "filterName": "no-clicked",
            },
        )["personalizedRanking"]
    assert stored is not None and len(answer) == 100
    assert not set(rated) & set(answer)  # every unrated item, none of the 300
    assert not set(rated) & {item for item, _ in stored.items}
    assert sorted(e["itemId"] for e in ranking) == sorted(f"i{n}" for n in range(300, 320))


def test_the_list_in_redis_and_the_api_answer_agree_for_a_user_with_120_events(
    settings: ConnectorSettings, redis_db: redis.Redis, wide: tuple[Model, Interactions]
) -> None:
    publish(settings, artifacts(wide))
    events = Events(settings)  # lists explore, at the connector's default weight
    send_many(events, "busy", [f"i{(7 * n) % WIDE}" for n in range(120)])
    stored = RecommendationLists(redis_db, Keys(settings.dataset_group), 3600).read(
        Subject("u", "busy")
    )
    same_terms = {
        "exploration_weight": settings.lists_exploration_weight,
        "exploration_item_age_cut_off": settings.lists_exploration_item_age_cut_off_days,
    }
    with serving(settings, **same_terms) as api:
        first = api.ids({"userId": "busy", "numResults": 10})
        second = api.ids({"userId": "busy", "numResults": 10})
        _, text = api.call("/metrics")
    assert stored is not None
    assert first == second == [item for item, _ in stored.items[:10]]
    assert 'streamrec_api_recommendations_total{source="precomputed"} 2.0' in text
