"""One request to a `streamrec api` process, for the benchmarks that start one."""

from __future__ import annotations

import http.client
from typing import Any

import orjson

JSON = {"Content-Type": "application/json"}  # the API answers 415 to any other POST body


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a new connection; (status, decoded body), (0, None) if refused."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {} if body is None else JSON
        connection.request(
            method, path, body=None if body is None else orjson.dumps(body), headers=headers
        )
        response = connection.getresponse()
        return response.status, orjson.loads(response.read() or b"null")
    except (ConnectionError, OSError):
        return 0, None
    finally:
        connection.close()
