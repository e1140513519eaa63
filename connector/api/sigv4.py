"""AWS Signature Version 4 checking, so Amazon Personalize's SDK clients can call `streamrec api`.

boto3's `personalize-events` and `personalize-runtime` clients sign every request with SigV4
(docs/security.md). When API keys are configured, such a client authenticates by using one of
them as its secret access key; its access key id may be any name and is only reported. The
signature is recomputed with botocore's own signer (`botocore.auth.SigV4Auth`) rather than a
second copy of the canonical-request rules, and compared with every key in constant time, so
timing reveals neither a key nor which one matched. Pure functions: no aiohttp here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from botocore.auth import (
    SIGNED_HEADERS_BLACKLIST,
    SigV4Auth,
)
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# Only the path and query of this URL reach the canonical request: `host` is a signed header
# and is taken from the request's headers, so a malformed Host cannot break URL parsing.
_BASE_URL = "http://sigv4.invalid"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_DATE = re.compile(r"\d{8}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("Credential", "SignedHeaders", "Signature")


class SignatureError(Exception):
    """A request's SigV4 signature is missing, malformed, stale or wrong; the message says which."""


@dataclass(frozen=True)
class Authorization:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header, as the client sent them."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    """The parts of a SigV4 Authorization header; SignatureError when it is not one."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(f"the Authorization header is not {ALGORITHM}")
    fields = _fields(rest)
    access_key_id, date, region, service = _credential(fields["Credential"])
    return Authorization(
        access_key_id=access_key_id,
        date=date,
        region=region,
        service=service,
        signed_headers=_signed_header_names(fields["SignedHeaders"]),
        signature=_signature_field(fields["Signature"]),
    )


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[bytes],
    now: datetime,
    max_skew_seconds: float = 300,
) -> str:
    """The access key id of a request whose SigV4 signature one of `secrets` produced.

    `path` and `query` are the raw, still percent-encoded request target as received (aiohttp's
    `request.rel_url.raw_path` and `raw_query_string`), since that is what the client signed.
    Raises SignatureError saying what is wrong otherwise.
    """
    lowered = _lowered(headers)
    if "authorization" not in lowered:
        raise SignatureError("the Authorization header is missing")
    authorization = parse_authorization(lowered["authorization"])
    timestamp = _timestamp(lowered, authorization, now, max_skew_seconds)
    signed = _signed_headers(lowered, authorization)
    _check_payload_hash(signed, body)
    request = _request(method, path, query, signed, body, timestamp)
    string_to_sign = _string_to_sign(request, authorization)
    claimed = authorization.signature
    matches = [
        hmac.compare_digest(_signature(request, string_to_sign, authorization, secret), claimed)
        for secret in _texts(secrets)
    ]
    if not any(matches):
        raise SignatureError(
            "the signature does not match: the secret access key must be one of the API keys"
        )
    return authorization.access_key_id


def _fields(rest: str) -> dict[str, str]:
    """The `Credential`, `SignedHeaders` and `Signature` fields, each exactly once."""
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals or name not in _FIELDS or name in fields:
            raise SignatureError(f"the Authorization header has an unexpected field {part!r}")
        fields[name] = value
    missing = [name for name in _FIELDS if name not in fields]
    if missing:
        raise SignatureError(f"the Authorization header lacks {', '.join(missing)}")
    return fields


def _credential(value: str) -> tuple[str, str, str, str]:
    """(access key id, date, region, service) from `AKID/YYYYMMDD/region/service/aws4_request`."""
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise SignatureError(
            f"Credential {value!r} is not <access key id>/<date>/<region>/<service>/aws4_request"
        )
    if not _DATE.fullmatch(parts[1]):
        raise SignatureError(f"the Credential date {parts[1]!r} is not YYYYMMDD")
    return parts[0], parts[1], parts[2], parts[3]


def _signed_header_names(value: str) -> tuple[str, ...]:
    """The lower-case names of `SignedHeaders=a;b;c`."""
    names = tuple(value.split(";"))
    if not all(names) or any(name != name.lower() for name in names):
        raise SignatureError(f"SignedHeaders {value!r} is not lower-case names joined by ';'")
    return names


def _signature_field(value: str) -> str:
    """The signature, which SigV4 writes as 64 lower-case hex digits."""
    if not _SIGNATURE.fullmatch(value):
        raise SignatureError("Signature is not 64 lower-case hex digits")
    return value


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers by lower-case name; repeated ones joined by ',' as SigV4 canonicalizes them."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{_trimmed(value)}" if key in lowered else _trimmed(value)
    return lowered


def _trimmed(value: str) -> str:
    """A header value with runs of white space squeezed to one space, as SigV4 signs it."""
    return " ".join(value.split())


def _timestamp(
    lowered: Mapping[str, str], authorization: Authorization, now: datetime, max_skew: float
) -> str:
    """X-Amz-Date, once it is well formed, on the Credential's day and within `max_skew`."""
    value = lowered.get("x-amz-date")
    if value is None:
        raise SignatureError("the X-Amz-Date header is missing (SigV4 signs the request time)")
    sent = _amz_date(value)
    if authorization.date != value[:8]:
        raise SignatureError(
            f"the Credential date {authorization.date} is not X-Amz-Date's day {value[:8]}"
        )
    skew = abs((_utc(now) - sent).total_seconds())
    if skew > max_skew:
        raise SignatureError(
            f"the request is stale: X-Amz-Date {value} is {skew:.0f} s from the server's clock,"
            f" more than the {max_skew:g} s allowed (AWS allows 5 minutes); check the clocks"
        )
    return value


def _amz_date(value: str) -> datetime:
    """The UTC time an X-Amz-Date header (`YYYYMMDDTHHMMSSZ`) names."""
    sent = None
    if _AMZ_DATE.fullmatch(value):
        try:
            sent = datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            sent = None
    if sent is None:
        raise SignatureError(f"X-Amz-Date {value!r} is not YYYYMMDDTHHMMSSZ")
    return sent


def _utc(now: datetime) -> datetime:
    """`now` as an aware datetime, a naive one being taken as UTC."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _signed_headers(lowered: Mapping[str, str], authorization: Authorization) -> dict[str, str]:
    """Only the headers the client signed, once `host` is among them and all are present."""
    names = authorization.signed_headers
    if "host" not in names:
        raise SignatureError("SignedHeaders must include host")
    missing = [name for name in names if name not in lowered]
    if missing:
        raise SignatureError(f"signed header(s) missing from the request: {', '.join(missing)}")
    unsignable = [name for name in names if name in SIGNED_HEADERS_BLACKLIST]
    if unsignable:
        raise SignatureError(f"header(s) that cannot be verified were signed: {unsignable}")
    return {name: lowered[name] for name in names}


def _check_payload_hash(signed: Mapping[str, str], body: bytes) -> None:
    """Refuse a signed X-Amz-Content-SHA256 that is not the body's hash, since botocore's
    canonical request trusts that header instead of hashing the body."""
    claimed = signed.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        raise SignatureError("X-Amz-Content-SHA256 is not the SHA-256 of the body")


def _request(
    method: str, path: str, query: str, signed: Mapping[str, str], body: bytes, timestamp: str
) -> AWSRequest:
    """The request as botocore's signer sees it, stamped with the client's X-Amz-Date."""
    url = _BASE_URL + path + (f"?{query}" if query else "")
    parts = urlsplit(url)
    if parts.path != path or parts.query != query:
        raise SignatureError(f"the request target {path!r} cannot be a signed path")
    request = AWSRequest(method=method, url=url, headers=dict(signed), data=body)
    request.context["timestamp"] = timestamp
    return request


def _string_to_sign(request: AWSRequest, authorization: Authorization) -> str:
    """SigV4's string to sign, which does not depend on the secret, so it is built once."""
    signer = SigV4Auth(Credentials(authorization.access_key_id, ""), *_scope(authorization))
    return str(signer.string_to_sign(request, signer.canonical_request(request)))


def _signature(
    request: AWSRequest, string_to_sign: str, authorization: Authorization, secret: str
) -> str:
    """The hex signature `secret` gives the string to sign, in the client's credential scope."""
    signer = SigV4Auth(Credentials(authorization.access_key_id, secret), *_scope(authorization))
    return str(signer.signature(string_to_sign, request))


def _scope(authorization: Authorization) -> tuple[str, str]:
    """(service, region), in the order SigV4Auth takes them."""
    return authorization.service, authorization.region


def _texts(secrets: Sequence[bytes]) -> list[str]:
    """The secrets as text, which is how SDKs hold a secret key; non-UTF-8 bytes can be none."""
    texts = []
    for secret in secrets:
        try:
            texts.append(secret.decode())
        except UnicodeDecodeError:
            continue
    return texts
