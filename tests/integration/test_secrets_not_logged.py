"""Real `streamrec` commands run with secrets configured; none may appear in their output.

Why: logs are shipped, indexed and read by people who must not get the Redis password, an
API key or a Kafka password. The commands run here against a redis-server of this test's
own that requires a password (and an ACL user with another), verbose (`-v`: info lines,
access log, librdkafka's own lines), and include failures, whose messages are where secrets
usually leak: a wrong password in the Redis URL, a training run that cannot start. Every
byte of stdout and stderr is searched for each secret.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from connector.devservices import tools
from connector.devservices.process import free_port
from connector.settings import ConnectorSettings
from tests.integration.helpers import answers, prepare_group, running


@dataclass(frozen=True)
class SecuredRedis:
    """A redis-server of this test: `requirepass` for the default user and an ACL user."""

    url: str
    default_password: str
    user: str
    user_password: str


@pytest.fixture
def secured_redis(tmp_path: Path) -> Iterator[SecuredRedis]:
    port = free_port()
    secured = SecuredRedis(
        f"redis://127.0.0.1:{port}/0",
        f"default-{uuid.uuid4().hex}",
        "streamrec-app",
        f"acl-{uuid.uuid4().hex}",
    )
    config = tmp_path / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {tmp_path}\n'
        f"requirepass {secured.default_password}\n"
        f"user {secured.user} on >{secured.user_password} ~* &* +@all\n"
    )
    server = subprocess.Popen(
        [tools.require("redis-server"), str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis.from_url(
            secured.url, username=secured.user, password=secured.user_password
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):  # it really requires a password
            redis.Redis.from_url(secured.url).ping()
        yield secured
    finally:
        server.terminate()
        server.wait(10)


@dataclass(frozen=True)
class Run:
    """One command's combined output and exit status."""

    command: str
    returncode: int
    output: str


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> Run:
    done = subprocess.run(  # noqa: S603 - our own command
        ["streamrec", *command], env=env, capture_output=True, text=True, timeout=timeout
    )
    return Run(" ".join(command), done.returncode, done.stdout + done.stderr)


def run_briefly(
    command: list[str], env: dict[str, str], ready_url: str, exercise: list[urllib.request.Request]
) -> Run:
    """Start a long-running command, wait until `ready_url` answers, make the `exercise`
    requests, then stop it with SIGTERM."""
    with running(command, env, ready_url) as run:
        for request in exercise:
            answers(request)
    return Run(" ".join(command), run.process.returncode, run.output)


def test_no_command_prints_a_configured_secret(
    settings: ConnectorSettings, service_env: dict[str, str], secured_redis: SecuredRedis
) -> None:
    prepare_group(settings)
    api_keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    kafka_password, key_password = f"sasl-{uuid.uuid4().hex}", f"tls-{uuid.uuid4().hex}"
    api_port, web_port = free_port(), free_port()
    env = {
        **service_env,
        "STREAMREC_REDIS_URL": secured_redis.url,
        "STREAMREC_REDIS_USERNAME": secured_redis.user,
        "STREAMREC_REDIS_PASSWORD": secured_redis.user_password,
        "STREAMREC_API_KEYS": ",".join(api_keys),
        "STREAMREC_API_PORT": str(api_port),
        "STREAMREC_CONNECTOR_WEB_PORT": str(web_port),
        # Configured but unused on this PLAINTEXT broker: still never to be printed.
        "STREAMREC_KAFKA_SASL_USERNAME": "streamrec",
        "STREAMREC_KAFKA_SASL_PASSWORD": kafka_password,
    }
    # A wrong password in the URL instead (it contains the real one, so a leak of either shows).
    with_url_password = {
        **{k: v for k, v in env.items() if not k.startswith("STREAMREC_REDIS_")},
        "STREAMREC_REDIS_URL": secured_redis.url.replace(
            "://", f"://{secured_redis.user}:{secured_redis.default_password}-wrong@"
        ),
        "STREAMREC_KAFKA_SSL_KEY_PASSWORD": key_password,
    }
    api = f"http://127.0.0.1:{api_port}"
    runs = [
        run(["config", "show"], env),
        run(["-v", "config", "show"], with_url_password),
        run(["-v", "train", "--mode", "full"], env),  # fails: no interactions yet
        run(["-v", "train", "--mode", "full"], with_url_password),  # fails: Redis refuses
        run_briefly(
            ["-v", "api"],
            env,
            f"{api}/healthz",
            [
                _post(f"{api}/recommendations", {"Authorization": f"Bearer {api_keys[0]}"}),
                _post(f"{api}/recommendations", {"x-api-key": api_keys[1]}),
                _post(f"{api}/recommendations", {"x-api-key": api_keys[0][:-1]}),
                _post(f"{api}/recommendations", {}),
            ],
        ),
        run_briefly(
            ["-v", "connector", "--verbose-faust"], env, f"http://127.0.0.1:{web_port}/healthz", []
        ),
    ]
    assert runs[0].returncode == 0 and '"redis_password": "**********"' in runs[0].output
    assert '"api_keys": "**********"' in runs[0].output
    assert runs[2].returncode != 0 and runs[3].returncode != 0
    assert "refused the credentials" in runs[3].output
    assert " 401 " in runs[4].output and " 503 " in runs[4].output  # the access log
    secrets = {
        "Redis ACL password": secured_redis.user_password,
        "Redis default password": secured_redis.default_password,
        "API key 1": api_keys[0],
        "API key 2": api_keys[1],
        "Kafka SASL password": kafka_password,
        "TLS key password": key_password,
    }
    for done in runs:
        assert done.output.strip(), f"{done.command} printed nothing: nothing was checked"
        for name, secret in secrets.items():
            for shown in (secret, secret[-16:]):
                assert shown not in done.output, f"`streamrec {done.command}` printed the {name}"
    assert os.environ.get("STREAMREC_API_KEYS") is None  # the secrets stayed in the children


def _post(url: str, headers: dict[str, str]) -> urllib.request.Request:
    return urllib.request.Request(  # noqa: S310 - our own server
        url, data=b'{"userId": "u1"}', headers={"Content-Type": "application/json", **headers}
    )
