"""Optional API keys for `streamrec api`: off unless keys are configured.

Keys come from `STREAMREC_API_KEYS` (comma-separated, a SecretStr so it never reaches logs
or `streamrec config show`) and/or `STREAMREC_API_KEYS_FILE` (one key per line, as a
Kubernetes Secret is mounted), read once at start-up. A client sends one as
`Authorization: Bearer <key>`, as the password of `Authorization: Basic` (Schema Registry
clients' `basic.auth.user.info`), as `x-api-key: <key>`, or as the secret access key of an
AWS SDK client, which signs the request with SigV4 (sigv4.py checks the signature; the access
key id may be any name). It is compared with every configured key in constant time
(`hmac.compare_digest`), so timing reveals neither a key nor which one matched. Without a
valid key a request gets 401 (403 for a wrong or stale signature); the probes `/healthz`
and `/readyz` stay open so an orchestrator needs no key, and `/metrics` stays open only when
`STREAMREC_API_METRICS_PUBLIC` says so. Several keys allow rotation: add the new one,
move clients, remove the old one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from connector.api import aws
from connector.api.bodies import read_body
from connector.api.settings import ApiSettings
from connector.exceptions import ConfigurationError

log = logging.getLogger("streamrec.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBES = frozenset({"/healthz", "/readyz"})
SIGV4 = "AWS4-HMAC-SHA256 "


def configured_keys(settings: ApiSettings) -> tuple[bytes, ...]:
    """The keys from the setting and the file; () when API keys are off."""
    keys = []
    if settings.api_keys is not None:
        keys += settings.api_keys.get_secret_value().split(",")
    if settings.api_keys_file is not None:
        keys += _read(settings.api_keys_file).splitlines()
    found = tuple(key.strip().encode() for key in keys if key.strip())
    if (settings.api_keys is not None or settings.api_keys_file is not None) and not found:
        raise ConfigurationError("STREAMREC_API_KEYS / STREAMREC_API_KEYS_FILE hold no key")
    return found


def middlewares(settings: ApiSettings) -> list[Middleware]:
    """[the key check] when keys are configured, else []."""
    keys = configured_keys(settings)
    if not keys:
        return []
    open_paths = PROBES | ({"/metrics"} if settings.api_metrics_public else set())
    return [_require_key(keys, open_paths)]


def presented_key(request: web.Request) -> bytes | None:
    """The key a request carries: `Authorization: Bearer <key>`, the password of
    `Authorization: Basic` (how Schema Registry clients send credentials, with any user
    name), else `x-api-key`."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip().encode()
    if scheme.lower() == "basic" and credentials.strip():
        return _basic_password(credentials.strip())
    key = request.headers.get("x-api-key", "").strip()
    return key.encode() if key else None


def _basic_password(credentials: str) -> bytes | None:
    try:
        decoded = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(b":")
    return password if colon and password else None


def is_valid(presented: bytes, keys: tuple[bytes, ...]) -> bool:
    """Whether `presented` is one of `keys`; every key is compared, in constant time."""
    matches = [hmac.compare_digest(presented, key) for key in keys]
    return any(matches)


def _require_key(keys: tuple[bytes, ...], open_paths: frozenset[str] | set[str]) -> Middleware:
    @web.middleware
    async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths:
            return await handler(request)
        if request.headers.get("Authorization", "").startswith(SIGV4):
            return await _signed(request, handler, keys)
        presented = presented_key(request)
        if presented is None:
            return _unauthorized("an API key is required: send Authorization: Bearer <key>")
        if not is_valid(presented, keys):
            return _unauthorized("the API key is not valid")
        return await handler(request)

    return require_key


async def _signed(
    request: web.Request, handler: Handler, keys: tuple[bytes, ...]
) -> web.StreamResponse:
    """A request an AWS SDK signed with one of the keys as its secret: 403 unless the SigV4
    signature verifies (sigv4 imports botocore, needed only once a client signs)."""
    from connector.api import sigv4

    body = await read_body(request)  # kept by aiohttp for the handler
    try:
        access_key_id = sigv4.verify(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            request.headers,
            body,
            keys,
            datetime.now(UTC),
        )
    except sigv4.SignatureError as exc:
        return _refused(403, str(exc))
    log.debug("signed request", extra={"access_key_id": access_key_id, "path": request.path})
    return await handler(request)


def _unauthorized(message: str) -> web.Response:
    response = _refused(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="streamrec"'
    return response


def _refused(status: int, message: str) -> web.Response:
    headers, document = aws.error_document(status, message)
    return web.Response(
        body=orjson.dumps(document),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read STREAMREC_API_KEYS_FILE {path}: {exc}") from exc
