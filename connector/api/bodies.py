"""Reading a request's body, for the routes and for the SigV4 check that needs it first.

While the body is read, the request is marked (READING_BODY), so that a deadline passing then
is answered 408 (the client did not send it in time) rather than 503; a client that closes
before its Content-Length is a request error (400), not our failure. aiohttp keeps the body
once read, so reading it again is free.
"""

from __future__ import annotations

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from connector.api import ApiRequestError

READING_BODY = web.RequestKey("reading_body", bool)


async def read_body(request: web.Request) -> bytes:
    """The request's body bytes (at most the app's client_max_size, else 413)."""
    request[READING_BODY] = True  # a deadline now means the body did not arrive: 408
    try:
        raw = await request.read()
    except (ClientPayloadError, HttpProcessingError, ConnectionResetError) as exc:
        # The client closed before its Content-Length: a client's fault, not ours (500).
        raise ApiRequestError(f"the request body ended before its Content-Length: {exc}") from exc
    request[READING_BODY] = False
    return raw
