"""connector.api.sigv4 against requests signed by botocore, as Personalize's SDK sends them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

from connector.api import sigv4
from connector.api.sigv4 import SignatureError, parse_authorization, verify

NOW = datetime(2026, 12, 7, 4, 33, 34, tzinfo=UTC)
HOST = "127.0.0.1:8080"
BODY = b'{"trackingId": "t", "sessionId": "s", "eventList": []}'
SECRETS = [b"k1", b"k2", b"k3"]


@dataclass(frozen=True)
class Signed:
    """A request as the server receives it: raw path and query, headers with Host, body."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = field(repr=False)


def sign(
    monkeypatch: pytest.MonkeyPatch,
    *,
    path: str = "/events",
    query: str = "",
    body: bytes = BODY,
    key: str = "k2",
    headers: dict[str, str] | None = None,
    when: datetime = NOW,
) -> Signed:
    """A JSON POST signed by botocore's SigV4Auth.add_auth at `when`, with secret key `key`."""
    # add_auth stamps the request with botocore.auth.get_current_datetime() (naive UTC).
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda remove_tzinfo=True: when.replace(tzinfo=None)
    )
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json", **(headers or {})},
        data=body,
    )
    SigV4Auth(Credentials("me", key), "personalize", "us-east-1").add_auth(request)
    # The signer takes host from the URL; on the wire the HTTP client sends it as Host.
    sent = {name: str(value) for name, value in request.headers.items()} | {"Host": HOST}
    return Signed("POST", path, query, sent, body)


def check(signed: Signed, secrets: list[bytes] | None = None, now: datetime = NOW) -> str:
    return verify(
        signed.method,
        signed.path,
        signed.query,
        signed.headers,
        signed.body,
        SECRETS if secrets is None else secrets,
        now,
    )


def with_headers(signed: Signed, **changes: str) -> Signed:
    return replace(signed, headers=signed.headers | changes)


def without_header(signed: Signed, name: str) -> Signed:
    headers = {key: value for key, value in signed.headers.items() if key.lower() != name.lower()}
    return replace(signed, headers=headers)


def test_the_right_secret_among_several_verifies_and_names_the_access_key(monkeypatch):
    signed = sign(monkeypatch)
    assert parse_authorization(signed.headers["Authorization"]).signed_headers == (
        "content-type",
        "host",
        "x-amz-date",
    )
    assert check(signed) == "me"


def test_every_secret_is_compared_even_after_a_match(monkeypatch):
    compared: list[str] = []
    compare_digest = hmac.compare_digest  # sigv4.hmac is the hmac module itself

    def counting(a: str, b: str) -> bool:
        compared.append(a)
        return compare_digest(a, b)

    monkeypatch.setattr(sigv4.hmac, "compare_digest", counting)
    assert check(sign(monkeypatch, key="k1")) == "me"
    assert len(compared) == len(SECRETS)


def test_a_wrong_secret_fails(monkeypatch):
    with pytest.raises(SignatureError, match="does not match"):
        check(sign(monkeypatch, key="k4"))
    with pytest.raises(SignatureError, match="does not match"):
        check(sign(monkeypatch), secrets=[b"k1", b"k3"])
    with pytest.raises(SignatureError, match="does not match"):
        check(sign(monkeypatch), secrets=[])


def test_an_altered_body_fails(monkeypatch):
    signed = sign(monkeypatch)
    with pytest.raises(SignatureError, match="does not match"):
        check(replace(signed, body=signed.body.replace(b'"s"', b'"x"')))
    with pytest.raises(SignatureError, match="does not match"):
        check(replace(signed, body=b""))


def test_an_altered_signed_header_fails(monkeypatch):
    signed = sign(monkeypatch)
    with pytest.raises(SignatureError, match="does not match"):
        check(with_headers(signed, **{"Content-Type": "text/plain"}))
    with pytest.raises(SignatureError, match="does not match"):
        check(with_headers(signed, Host="127.0.0.1:8081"))


def test_an_altered_method_or_path_fails(monkeypatch):
    signed = sign(monkeypatch)
    with pytest.raises(SignatureError, match="does not match"):
        check(replace(signed, method="PUT"))
    with pytest.raises(SignatureError, match="does not match"):
        check(replace(signed, path="/recommendations"))


def test_a_header_that_was_not_signed_may_change(monkeypatch):
    signed = sign(monkeypatch, headers={"User-Agent": "sdk/1"})
    assert "user-agent" not in parse_authorization(signed.headers["Authorization"]).signed_headers
    changed = with_headers(signed, **{"User-Agent": "sdk/2", "Content-Length": "999"})
    assert check(changed) == "me"


def test_header_names_are_matched_case_insensitively(monkeypatch):
    signed = sign(monkeypatch)
    lowered = {name.lower(): value for name, value in signed.headers.items()}
    assert check(replace(signed, headers=lowered)) == "me"


@pytest.mark.parametrize("offset", [timedelta(minutes=4), timedelta(minutes=-4)])
def test_a_clock_skew_under_five_minutes_passes(monkeypatch, offset):
    assert check(sign(monkeypatch), now=NOW + offset) == "me"


@pytest.mark.parametrize("offset", [timedelta(minutes=10), timedelta(minutes=-10)])
def test_a_request_ten_minutes_old_or_ahead_is_stale(monkeypatch, offset):
    with pytest.raises(SignatureError, match="stale.*5 minutes"):
        check(sign(monkeypatch), now=NOW + offset)


def test_a_naive_now_is_taken_as_utc(monkeypatch):
    assert check(sign(monkeypatch), now=NOW.replace(tzinfo=None)) == "me"


def test_a_query_string_is_signed(monkeypatch):
    signed = sign(monkeypatch, query="b=2&a=1")
    assert check(signed) == "me"
    with pytest.raises(SignatureError, match="does not match"):
        check(replace(signed, query="b=2&a=3"))


def test_a_percent_encoded_path_verifies_as_received(monkeypatch):
    signed = sign(monkeypatch, path="/items/a%20b")
    assert check(signed) == "me"
    with pytest.raises(SignatureError, match="does not match"):
        check(replace(signed, path="/items/a b"))


def test_a_signed_payload_hash_must_be_the_body_hash(monkeypatch):
    # botocore's canonical request uses X-Amz-Content-SHA256 in place of hashing the body.
    digest = hashlib.sha256(BODY).hexdigest()
    signed = sign(monkeypatch, headers={"X-Amz-Content-SHA256": digest})
    assert (
        "x-amz-content-sha256"
        in parse_authorization(signed.headers["Authorization"]).signed_headers
    )
    assert check(signed) == "me"
    with pytest.raises(SignatureError, match="X-Amz-Content-SHA256"):
        check(replace(signed, body=b"{}"))


def test_a_missing_authorization_header_fails(monkeypatch):
    with pytest.raises(SignatureError, match="Authorization header is missing"):
        check(without_header(sign(monkeypatch), "Authorization"))


GOOD = (
    "AWS4-HMAC-SHA256 Credential=me/20261207/us-east-1/personalize/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Bearer k2", "not AWS4-HMAC-SHA256"),
        ("AWS4-HMAC-SHA1 " + GOOD.partition(" ")[2], "not AWS4-HMAC-SHA256"),
        (GOOD.replace(", Signature=" + "0" * 64, ""), "lacks Signature"),
        (GOOD + ", Signature=" + "0" * 64, "unexpected field"),
        (GOOD + ", Extra=1", "unexpected field"),
        (GOOD.replace("Credential=", "Credential "), "unexpected field"),
        (GOOD.replace("/aws4_request", "/aws3_request"), "Credential"),
        (GOOD.replace("me/20261207/us-east-1/", "me/20261207/"), "Credential"),
        (GOOD.replace("Credential=me/", "Credential=/"), "Credential"),
        (GOOD.replace("20261207", "2026-12-7"), "YYYYMMDD"),
        (GOOD.replace("content-type;host", "Content-Type;host"), "SignedHeaders"),
        (GOOD.replace("content-type;host", "content-type;;host"), "SignedHeaders"),
        (GOOD.replace("0" * 64, "0" * 63), "64 lower-case hex"),
        (GOOD.replace("0" * 64, "A" * 64), "64 lower-case hex"),
    ],
)
def test_a_malformed_authorization_header_fails(value, message):
    with pytest.raises(SignatureError, match=message):
        parse_authorization(value)


def test_a_malformed_authorization_header_fails_verification(monkeypatch):
    with pytest.raises(SignatureError, match="not AWS4-HMAC-SHA256"):
        check(with_headers(sign(monkeypatch), Authorization="Bearer k2"))


def test_an_access_key_id_may_be_any_name():
    parsed = parse_authorization(GOOD.replace("Credential=me/", "Credential=team/a b/"))
    assert parsed.access_key_id == "team/a b"
    assert (parsed.date, parsed.region, parsed.service) == ("20261207", "us-east-1", "personalize")


def test_a_missing_x_amz_date_fails(monkeypatch):
    with pytest.raises(SignatureError, match="X-Amz-Date header is missing"):
        check(without_header(sign(monkeypatch), "X-Amz-Date"))


def test_a_malformed_x_amz_date_fails(monkeypatch):
    with pytest.raises(SignatureError, match="not YYYYMMDDTHHMMSSZ"):
        check(with_headers(sign(monkeypatch), **{"X-Amz-Date": "20261307T043334Z"}))


def test_the_credential_date_must_be_x_amz_dates_day(monkeypatch):
    signed = sign(monkeypatch)
    other_day = signed.headers["Authorization"].replace("/20261207/", "/20261206/")
    with pytest.raises(SignatureError, match="Credential date 20261206"):
        check(with_headers(signed, Authorization=other_day))


def test_a_signed_header_missing_from_the_request_fails(monkeypatch):
    with pytest.raises(SignatureError, match="missing from the request: content-type"):
        check(without_header(sign(monkeypatch), "Content-Type"))


def test_host_must_be_signed(monkeypatch):
    signed = sign(monkeypatch)
    unsigned_host = signed.headers["Authorization"].replace(";host;", ";")
    with pytest.raises(SignatureError, match="must include host"):
        check(with_headers(signed, Authorization=unsigned_host))


class _Raw:
    """The body of the fake response: an empty JSON object."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b"{}"


def capture(service: str, operation: str, params: dict[str, Any]) -> Signed:
    """The request a real botocore client sends, caught at before-send instead of sent."""
    client = botocore.session.get_session().create_client(
        service,
        endpoint_url=f"http://{HOST}",
        region_name="eu-west-1",
        aws_access_key_id="me",
        aws_secret_access_key="k2",  # noqa: S106 - a test value
    )
    captured: list[Signed] = []

    def before_send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        headers["Host"] = url.netloc  # added by the HTTP client on the wire
        captured.append(Signed(request.method, url.path, url.query, headers, request.body))
        return AWSResponse(request.url, 200, {}, _Raw())

    client.meta.events.register("before-send", before_send)
    getattr(client, operation)(**params)
    (signed,) = captured
    return signed


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        (
            "personalize-events",
            "put_events",
            {
                "trackingId": "t",
                "sessionId": "s",
                "eventList": [{"eventType": "click", "sentAt": NOW, "itemId": "i1"}],
            },
        ),
        ("personalize-runtime", "get_recommendations", {"campaignArn": "arn:c", "userId": "u"}),
    ],
)
def test_a_request_signed_by_the_real_sdk_client_verifies(service, operation, params):
    signed = capture(service, operation, params)
    sent_at = datetime.strptime(signed.headers["X-Amz-Date"], sigv4.AMZ_DATE_FORMAT)
    request = (signed.method, signed.path, signed.query, signed.headers, signed.body)
    assert verify(*request, [b"k1", b"k2"], sent_at.replace(tzinfo=UTC)) == "me"
    with pytest.raises(SignatureError, match="does not match"):
        verify(*request, [b"k1"], sent_at.replace(tzinfo=UTC))
