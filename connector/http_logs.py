"""Logging of the HTTP servers (the API's and the connector's faust web): an access log
with query strings redacted, and one warning line for a request that cannot be parsed."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

AIOHTTP_SERVER_LOGGER = "aiohttp.server"
REDACTED = "<redacted>"


def without_query(target: str) -> str:
    """`target` (a path or URL) with its query string replaced by a marker: a query may carry
    an API key (`?x-api-key=...`) or a user's id, and access logs are read by many."""
    if "?" not in target:
        return target
    parts = urlsplit(target)
    return urlunsplit(parts._replace(query=REDACTED, fragment=""))


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log line (remote, request line, status, size, seconds, Referer,
    User-Agent), with the query strings of the request line and the Referer redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        line = f"{request.method} {without_query(request.path_qs)} {version}"
        referer = without_query(request.headers.get("Referer", "-"))
        agent = request.headers.get("User-Agent", "-")
        self.logger.info(
            '%s "%s" %s %s %.6f "%s" "%s"',
            request.remote or "-",
            line,
            response.status,
            response.body_length,
            time,
            referer,
            agent,
            extra={"request_line": line, "status": response.status, "seconds": round(time, 6)},
        )


class MalformedHttpFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at ERROR with a traceback: a client's mistake
    (or a scanner's) that says nothing about the server. One WARNING line instead, with the
    parser's reason; any other error keeps its level and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = " ".join(str(error.message).split())[:200]
            record.msg = f"malformed HTTP request from %s answered {error.code}: %s"
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
            record.args = (remote, reason)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


_MALFORMED = MalformedHttpFilter()


def quiet_malformed_http() -> None:
    """Install MalformedHttpFilter on aiohttp's server logger (once)."""
    server = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if _MALFORMED not in server.filters:
        server.addFilter(_MALFORMED)
