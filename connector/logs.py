"""Structured, quiet-by-default logging: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

from connector.settings import LIBRDKAFKA_LOGGER

AIOHTTP_SERVER_LOGGER = "aiohttp.server"
REDACTED = "<redacted>"

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its `extra=` fields, so logs can be queried, not grepped."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


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


def configure(verbose: bool = False) -> None:
    """Warnings only by default; `verbose` adds progress and info lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # librdkafka warns about every retry it handles itself; show only its errors by default.
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.INFO if verbose else logging.ERROR)
    quiet_malformed_http()


def dict_config(level: int | None = None) -> dict[str, Any]:
    """What `configure` set up, as a `logging.config` dict (the root at `level` if given).

    faust's worker replaces the root logger's handlers with its own plain-text ones when it
    starts, which would drop the JSON format and every `extra=` field (a retried batch's
    error and delay); `streamrec connector` hands it this instead."""
    root = logging.getLogger()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr}
        },
        "root": {"level": root.level if level is None else level, "handlers": ["stderr"]},
        "loggers": {LIBRDKAFKA_LOGGER: {"level": logging.getLogger(LIBRDKAFKA_LOGGER).level}},
    }
