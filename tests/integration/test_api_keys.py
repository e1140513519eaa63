"""API keys and hostile filters on the real HTTP API (real Redis, broker and model).

Why: an API that serves a user's recommendations to anyone who can reach it leaks what that
user did. When keys are configured, every request but the orchestrator's probes must carry
one, a wrong or partial key must be refused the same way, and no answer may echo a key.
Filters are a language clients name, not code: a hostile expression must be refused at
creation and a hostile filterName must be an unknown filter (404), with nothing executed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from connector.api import auth
from connector.api.app import create_app
from connector.exceptions import ConfigurationError, FilterExpressionError
from connector.filters.grammar import parse
from connector.filters.store import open_filters
from connector.model.artifacts import ModelArtifacts
from connector.model.model import Hyperparameters
from connector.settings import ConnectorSettings
from tests.integration.test_api import Server, api_settings, artifacts, publish, training_rows
from worker.data.interactions import from_rows
from worker.training.fit import train

KEYS = ("k-first-0123456789", "k-second-ABCDEFGHIJ")
BODY = {"userId": "u1", "numResults": 3}


def call(
    server: Server, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any, dict[str, str]]:
    """Status, decoded JSON body and headers of one request with `headers`."""
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(server.base + path, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, text, got = response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, text, got = error.code, error.read().decode(), dict(error.headers)
    try:
        return status, json.loads(text), got
    except json.JSONDecodeError:
        return status, text, got


@pytest.fixture(scope="module")
def version() -> ModelArtifacts:
    """The tiny model of test_api.py, trained once for this module."""
    data = from_rows(training_rows())
    model = train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=3), seed=7)
    return artifacts((model, data))


@pytest.fixture
def published(settings: ConnectorSettings, redis_db: redis.Redis, version: ModelArtifacts) -> None:
    """A model version is served, so a request that passes the key check gets a 200."""
    publish(settings, version)


def test_without_keys_configured_nothing_is_asked(
    settings: ConnectorSettings, published: None
) -> None:
    with Server(create_app(api_settings(settings))) as api:
        status, answer, _ = call(api, "/recommendations", {}, BODY)
    assert status == 200 and len(answer["itemList"]) == 3


def test_with_keys_every_route_but_the_probes_needs_a_valid_one(
    settings: ConnectorSettings, published: None
) -> None:
    configured = api_settings(settings, api_keys=SecretStr(",".join(KEYS)))
    refused = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {KEYS[0][:-1]}"},  # a prefix of a key
        {"Authorization": f"Bearer {KEYS[0]}x"},  # a key and more
        {"Authorization": f"Bearer {KEYS[0]},{KEYS[1]}"},  # the setting's raw value
        {"Authorization": f"Basic {KEYS[0]}"},  # another scheme
        {"x-api-key": KEYS[0].upper()},
        {"x-api-key": ""},
    ]
    accepted = [
        {"Authorization": f"Bearer {KEYS[0]}"},
        {"Authorization": f"bearer {KEYS[1]}"},
        {"x-api-key": KEYS[1]},
        {"Authorization": "Token nope", "x-api-key": KEYS[0]},
    ]
    with Server(create_app(configured)) as api:
        for headers in refused:
            status, answer, got = call(api, "/recommendations", headers, BODY)
            assert status == 401, headers
            assert set(answer) == {"__type", "message"}
            assert got["WWW-Authenticate"].startswith("Bearer")
            assert not any(key in json.dumps(answer) for key in KEYS)
        for headers in accepted:
            status, answer, _ = call(api, "/recommendations", headers, BODY)
            assert status == 200 and len(answer["itemList"]) == 3, (headers, answer)
        ranking = {"userId": "u1", "inputList": ["p0", "i3"]}
        assert call(api, "/personalize-ranking", {}, ranking)[0] == 401
        assert call(api, "/personalize-ranking", {"x-api-key": KEYS[0]}, ranking)[0] == 200
        # The probes stay open; /metrics and unknown routes do not (no route enumeration).
        assert call(api, "/healthz", {})[:2] == (200, {"status": "ok"})
        assert call(api, "/readyz", {})[0] == 200
        assert call(api, "/metrics", {})[0] == 401
        assert call(api, "/no-such-route", {})[0] == 401
        assert call(api, "/no-such-route", {"x-api-key": KEYS[0]})[0] == 404
        status, text, _ = call(api, "/metrics", {"Authorization": f"Bearer {KEYS[0]}"})
    assert status == 200
    assert 'route="/recommendations",status="401"} 10.0' in text
    assert 'route="/recommendations",status="200"} 4.0' in text


def test_keys_from_a_file_and_a_public_metrics_route(
    settings: ConnectorSettings, published: None, tmp_path: Path
) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"\n  {KEYS[0]}  \n\n{KEYS[1]}\n")
    configured = api_settings(settings, api_keys_file=keys_file, api_metrics_public=True)
    with Server(create_app(configured)) as api:
        assert call(api, "/recommendations", {"x-api-key": KEYS[0]}, BODY)[0] == 200
        assert call(api, "/recommendations", {"x-api-key": KEYS[1]}, BODY)[0] == 200
        assert call(api, "/recommendations", {"x-api-key": ""}, BODY)[0] == 401
        assert call(api, "/metrics", {})[0] == 200


def test_a_keys_setting_without_a_usable_key_fails_at_start(
    settings: ConnectorSettings, tmp_path: Path
) -> None:
    (tmp_path / "empty").write_text("\n \n")
    for overrides in (
        {"api_keys": SecretStr(" , ")},
        {"api_keys_file": tmp_path / "empty"},
        {"api_keys_file": tmp_path / "missing"},
    ):
        with pytest.raises(ConfigurationError, match="STREAMREC_API_KEYS"):
            create_app(api_settings(settings, **overrides))


def test_keys_are_compared_in_constant_time_and_in_full() -> None:
    keys = (b"abc", b"abcdef")
    assert auth.is_valid(b"abc", keys) and auth.is_valid(b"abcdef", keys)
    assert not any(auth.is_valid(k, keys) for k in (b"ab", b"abcd", b"", b"ABC", b"abc "))


HOSTILE_FILTERS = [
    "__import__('os').system('touch {marker}')",
    'EXCLUDE ItemID WHERE Items.GENRES IN ("x") | __import__("os").system("touch {marker}")',
    'INCLUDE ItemID WHERE Items.GENRES IN (__import__("os").system("touch {marker}"))',
    'EXCLUDE ItemID WHERE Items.GENRES IN ("x"); import os; os.system("touch {marker}")',
    "EXCLUDE ItemID WHERE Items.GENRES IN ($X) IF CurrentUser.AGE > exec('open(\"{marker}\")')",
    '{{"$where": "touch {marker}"}}',
]


def test_hostile_filter_expressions_are_refused_and_never_run(
    settings: ConnectorSettings, published: None, tmp_path: Path
) -> None:
    marker = tmp_path / "executed"
    store = open_filters(settings)
    for n, template in enumerate(HOSTILE_FILTERS):
        expression = template.format(marker=marker)
        with pytest.raises(FilterExpressionError):
            parse(expression)
        with pytest.raises(FilterExpressionError):
            store.create(f"evil-{n}", expression)
    assert not marker.exists()
    assert store.list() == []
    with Server(create_app(api_settings(settings))) as api:
        for name in ("__import__('os')", "../../etc/passwd", "x" * 256, "a b;rm -rf /"):
            status, answer, _ = call(api, "/recommendations", {}, {**BODY, "filterName": name})
            assert status == 404 and "has no filter" in answer["message"], answer
        hostile_values = {**BODY, "filterName": "nope", "filterValues": {"X": "__import__('os')"}}
        assert call(api, "/recommendations", {}, hostile_values)[0] == 404
    assert not marker.exists()
