"""Structured, quiet-by-default logging: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from connector.settings import LIBRDKAFKA_LOGGER

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


def configure(verbose: bool = False) -> None:
    """Warnings only by default; `verbose` adds progress and info lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # librdkafka warns about every retry it handles itself; show only its errors by default.
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.INFO if verbose else logging.ERROR)


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
