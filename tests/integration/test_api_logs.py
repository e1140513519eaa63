"""What `streamrec -v api` writes to its log: no query string, no traceback for bad HTTP.

Why: an API key sent in the query string (`?x-api-key=...`) is refused with 401, yet the
access log wrote the request line verbatim, key included; and a request aiohttp cannot parse
(a client's or a scanner's doing) was logged at ERROR with a traceback, as if the server
were broken. The command runs as operators run it, and its whole output is searched.
"""

from __future__ import annotations

import json
import socket
import uuid

from connector.devservices.process import free_port
from tests.integration.helpers import running


def _send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_access_log_redacts_query_strings_and_bad_http_is_one_warning(
    service_env: dict[str, str],
) -> None:
    key = f"key-{uuid.uuid4().hex}"
    port = free_port()
    env = {**service_env, "STREAMREC_API_KEYS": key, "STREAMREC_API_PORT": str(port)}
    with running(["-v", "api"], env, f"http://127.0.0.1:{port}/healthz") as api:
        body = b'{"userId": "u1"}'
        keyed = _send(
            port,
            f"POST /recommendations?x-api-key={key}&userId=u1 HTTP/1.1\r\nHost: api\r\n"
            f"Referer: http://site.example/page?x-api-key={key}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        malformed = _send(port, b"POST /recommendations HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
    output = api.output
    assert keyed.startswith(b"HTTP/1.1 401") and malformed.startswith(b"HTTP/1.0 400")
    assert key not in output and key[-16:] not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "streamrec.api.access"]
    assert any(
        '"POST /recommendations?<redacted> HTTP/1.1" 401' in line["message"]
        and "http://site.example/page?<redacted>" in line["message"]
        for line in access
    ), access
    bad = [line for line in lines if "malformed HTTP request" in line["message"]]
    assert [line["level"] for line in bad] == ["warning"], lines
    assert "Content-Length" in bad[0]["message"] and "error" not in bad[0]
    assert "Traceback" not in output
    assert not [line for line in lines if line["level"] == "error"], lines
