"""The aiohttp application of `streamrec api`: routes, JSON errors, metrics, model reloading.

Every failure becomes a JSON body `{"__type": ..., "message": ...}` (AWS's error protocol,
aws.py, so Personalize's SDK clients raise the right exception) with a status that says whose
fault it is: 400 for a request to fix, 404 for a filter, campaign or dataset it does not
have, 404/405/413/415 for the wrong route, method, size or
Content-Type (size and type judged from the headers, at once, also for `Expect:
100-continue`), 408 for a body that did not arrive within the timeout, 503 while no
model is published, Redis is unreachable or the request outlived its timeout, 500 (logged
here, never echoed) for our own bugs. A stack trace never reaches a client. The service's
synchronous work (Redis reads, numpy) runs where STREAMREC_API_THREADS says: on the event
loop by default, one request at a time, or in a pool of threads. The app holds a ModelHolder
that follows the group's model announcements, so a newly published version is served
without a restart, and a request never mixes two versions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import redis
from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import _default_expect_handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from connector import http_logs, redis_client
from connector.api import (
    ApiRequestError,
    ModelChangedError,
    aws,
    dashboard,
    intake,
    schema_registry,
)
from connector.api.auth import middlewares as api_key_middlewares
from connector.api.bodies import READING_BODY, read_body
from connector.api.requests import Limits, parse_ranking, parse_recommendations
from connector.api.service import RecommendationService, Served, ServedItem
from connector.api.settings import ApiSettings
from connector.exceptions import (
    KafkaUnavailableError,
    ModelNotFoundError,
    RedisUnavailableError,
    TransientError,
)
from connector.filters.store import open_filters
from connector.keys import Keys
from connector.redis_client import RedisClient
from connector.serving.current_model import ModelHolder
from connector.serving.filters import FilterResolver, StoredFilters
from connector.serving.item_index import single_threaded_numerics
from connector.stores.model_versions import ModelStore

log = logging.getLogger("streamrec.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HOLDER = web.AppKey("holder", ModelHolder)
Answer = TypeVar("Answer")


class _Runner:
    """Runs the service's synchronous calls on the event loop (`threads` 0) or in a pool.

    On the loop, a request holds it for its Redis round trips and numpy work (about a
    millisecond from a list), and no thread competes for the interpreter lock: against a
    Redis on the same host that kept filtered requests' p99 low and steady where a pool of
    threads swung widely from run to run (docs/performance-log.md, Serving). A pool lets
    round trips to a distant Redis overlap."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, "streamrec-api") if threads else None

    async def run(self, work: Callable[[Any], Answer], argument: Any) -> Answer:
        if self._pool is not None:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, argument)
        return work(argument)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class _Metrics:
    """Requests and their latency by route and status, in a registry of this app alone."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["route", "status"]
        self.requests = Counter(
            "streamrec_api_requests_total", "API requests.", labels, registry=self.registry
        )
        self.seconds = Histogram(
            "streamrec_api_request_seconds", "API request latency.", labels, registry=self.registry
        )
        self.answers = Counter(
            "streamrec_api_recommendations_total",
            "GetRecommendations answers by source: the precomputed list, or ranked for it.",
            ["source"],
            registry=self.registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.seconds.labels(route, str(status)).observe(seconds)


def create_app(
    settings: ApiSettings,
    client: RedisClient | None = None,
    filters: FilterResolver | None = None,
) -> web.Application:
    """The API of the settings' dataset group; its model holder starts with the app."""
    client = client or redis_client.connect(settings)
    http_logs.quiet_malformed_http()
    store = ModelStore(client, Keys(settings.dataset_group))
    single_threaded_numerics()
    holder = ModelHolder(store, settings.api_model_poll_seconds, settings.serving_index_min_items)
    keys = Keys(settings.dataset_group)
    resolver = filters or _stored_filters(settings, client, keys, holder)
    metrics = _Metrics()
    service = RecommendationService(
        client, settings, holder, resolver, lambda source: metrics.answers.labels(source).inc()
    )
    app = web.Application(
        client_max_size=settings.api_max_body_bytes,
        middlewares=[
            _guard(metrics, settings),
            dashboard.public_shell(),
            *api_key_middlewares(settings),
        ],
    )
    app[HOLDER] = holder
    runner = _Runner(settings.api_threads)
    _routes(app, service, runner, settings, metrics)
    dashboard.register(app, settings, client, holder)
    schema_registry.register(app, settings)
    app.on_startup.append(_start_holder)
    app.on_cleanup.append(_stop_holder)

    async def close_runner(_: web.Application) -> None:
        runner.close()

    app.on_cleanup.append(close_runner)
    return app


def _stored_filters(
    settings: ApiSettings, client: RedisClient, keys: Keys, holder: ModelHolder
) -> StoredFilters:
    """The group's filters, each version's item table built before it is served."""
    stored = StoredFilters(open_filters(settings), client, keys)
    holder.before_serving(stored.warm)
    return stored


def _limits(settings: ApiSettings) -> Limits:
    return Limits(
        settings.api_default_num_results, settings.api_max_num_results, settings.api_max_input_list
    )


def _routes(
    app: web.Application,
    service: RecommendationService,
    runner: _Runner,
    settings: ApiSettings,
    metrics: _Metrics,
) -> None:
    limits, group = _limits(settings), settings.dataset_group

    async def recommendations(request: web.Request) -> web.Response:
        parsed = parse_recommendations(await _body(request), limits, group)
        served = await runner.run(service.recommend, parsed)
        return _json({"itemList": _items(served), "recommendationId": served.recommendation_id})

    async def ranking(request: web.Request) -> web.Response:
        parsed = parse_ranking(await _body(request), limits, group)
        served = await runner.run(service.rank, parsed)
        return _json(
            {"personalizedRanking": _items(served), "recommendationId": served.recommendation_id}
        )

    async def readyz(request: web.Request) -> web.Response:
        current = request.app[HOLDER].current
        if current is None:
            return _json({"status": "not ready", "message": "no model version loaded"}, 503)
        return _json({"status": "ready", "modelVersion": current.version})

    async def healthz(request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def prometheus(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    expect = _expect_handler(metrics, settings.api_max_body_bytes)
    app.router.add_post("/recommendations", recommendations, expect_handler=expect)
    app.router.add_post("/personalize-ranking", ranking, expect_handler=expect)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    intake.register(app, settings, metrics.registry, _body, expect)


async def _body(request: web.Request) -> Any:
    """The decoded JSON body of a POST whose Content-Type is application/json; aiohttp
    refuses one over client_max_size with 413 (a declared one is refused before this)."""
    _check_content_type(request)
    raw = await read_body(request)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiRequestError(f"the request body is not valid JSON: {exc}") from exc


def _check_content_type(request: web.BaseRequest) -> None:
    """Only JSON: a browser's cross-site "simple" POST (text/plain, a form) cannot send it
    without a CORS preflight, which this API never grants."""
    if request.content_type != "application/json":
        declared = request.headers.get(hdrs.CONTENT_TYPE, "none")
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Type must be application/json, got {declared[:80]}"
        )


def _declared_too_large(request: web.BaseRequest, max_body: int) -> bool:
    return request.content_length is not None and request.content_length > max_body


def _expect_handler(metrics: _Metrics, max_body: int) -> Any:
    """`Expect: 100-continue`: refuse a declared oversized body or a wrong Content-Type at
    once, so the client never sends it; otherwise aiohttp's own handler says 100 Continue.
    It runs before the middlewares, so it answers and counts the request itself."""

    async def expect(request: web.Request) -> web.StreamResponse | None:
        try:
            _check_content_type(request)
            if _declared_too_large(request, max_body):
                raise web.HTTPRequestEntityTooLarge(max_size=max_body, actual_size=0)
        except web.HTTPException as exc:
            response = error_response(exc.status, _http_message(exc, request, max_body))
            response.force_close()
            metrics.observe(_route(request), response.status, 0.0)
            return response
        await _default_expect_handler(request)
        return None

    return expect


def _items(served: Served) -> list[dict[str, Any]]:
    return [_item(item) for item in served.items]


def _item(item: ServedItem) -> dict[str, Any]:
    entry: dict[str, Any] = {"itemId": item.item_id, "score": item.score}
    if item.promotion_name is not None:
        entry["promotionName"] = item.promotion_name
    if item.metadata is not None:
        entry["metadata"] = dict(item.metadata)
    if item.reason is not None:
        entry["reason"] = [item.reason]
    return entry


def _json(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")


def error_response(status: int, message: str, exc: BaseException | None = None) -> web.Response:
    """An error in AWS's JSON error protocol, which also suits any other client: the type in
    `x-amzn-ErrorType` and `__type`, and the `message`."""
    headers, document = aws.error_document(status, message, exc)
    response = _json(document, status)
    response.headers.update(headers)
    return response


def _guard(metrics: _Metrics, settings: ApiSettings) -> Any:
    """Middleware: a deadline per request, errors as JSON, and the request counted."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            if _declared_too_large(request, settings.api_max_body_bytes):
                # At once, not after reading (or waiting for) the body aiohttp would refuse.
                raise web.HTTPRequestEntityTooLarge(
                    max_size=settings.api_max_body_bytes, actual_size=request.content_length or 0
                )
            async with asyncio.timeout(settings.api_request_timeout_seconds):
                response = await handler(request)
            if time.perf_counter() - started > settings.api_request_timeout_seconds:
                raise TimeoutError  # answered on the event loop, which no deadline interrupts
        except Exception as exc:  # noqa: BLE001 - every error becomes a JSON status, none leaks
            status, message = _failure(exc, request, settings)
            response = error_response(status, message, exc)
            if isinstance(exc, web.HTTPMethodNotAllowed):
                response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            if status in (408, 413):  # a body is left unread: do not reuse the connection
                response.force_close()
        metrics.observe(_route(request), response.status, time.perf_counter() - started)
        return response

    return guard


def _failure(exc: Exception, request: web.Request, settings: ApiSettings) -> tuple[int, str]:
    """The status and message a failure is answered with."""
    if isinstance(exc, ApiRequestError):  # 400, or 404 / 429 as its class says
        return exc.status, str(exc)
    if isinstance(exc, web.HTTPException):
        return exc.status, _http_message(exc, request, settings.api_max_body_bytes)
    if isinstance(exc, ModelNotFoundError | ModelChangedError):
        return 503, str(exc)
    if isinstance(exc, TimeoutError):
        timeout = settings.api_request_timeout_seconds
        if request.get(READING_BODY):
            declared = request.content_length
            return 408, (
                f"the request body did not arrive within {timeout:g} s"
                + (f" (Content-Length says {declared} bytes)" if declared is not None else "")
            )
        return 503, f"the request did not complete within {timeout:g} s; retry"
    if isinstance(exc, KafkaUnavailableError):
        log.warning("kafka unavailable", extra={"error": str(exc), "path": request.path})
        return 503, "Kafka is unavailable; retry"
    if isinstance(exc, redis.RedisError | RedisUnavailableError):
        log.warning("redis unavailable", extra={"error": str(exc), "path": request.path})
        return 503, "Redis is unavailable; retry"
    if isinstance(exc, TransientError):  # e.g. an external Schema Registry not answering
        log.warning("dependency unavailable", extra={"error": str(exc), "path": request.path})
        return 503, f"{exc}; retry"
    log.error("request failed", exc_info=exc, extra={"path": request.path})
    return 500, "internal error; the API's log has the details"


def _http_message(exc: web.HTTPException, request: web.Request, max_body: int) -> str:
    if exc.status == 404:
        return f"no such route: {request.method} {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if exc.status == 413:
        return f"the request body is larger than {max_body} bytes"
    if exc.status == 415:
        return exc.text or exc.reason
    return exc.reason


def _route(request: web.Request) -> str:
    """The matched route's pattern, so metrics labels stay few; `unmatched` for 404s."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


async def _start_holder(app: web.Application) -> None:
    await asyncio.to_thread(app[HOLDER].start)


async def _stop_holder(app: web.Application) -> None:
    app[HOLDER].stop()
