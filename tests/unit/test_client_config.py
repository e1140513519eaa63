"""Kafka SASL/SSL and Redis password/ACL/TLS settings reach every client the product builds.

Why: a security setting that one client forgets is a connection that fails in production
only (a secured cluster refuses it), or worse, one that silently goes out in plaintext. The
settings are read once (`CommonSettings`), turned into librdkafka config by `kafka_config()`,
into aiokafka credentials for faust by `connector.app._credentials`, and into redis-py
options by `redis_options()`; these tests check each translation, that real clients accept
it, and (by reading the source) that no Kafka or Redis client is built from anything else.
"""

from __future__ import annotations

import ast
import datetime
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connector import app as connector_app
from connector import redis_client
from connector.ingest import writer
from connector.settings import CommonSettings, ConnectorSettings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-sasl-Pa55"  # noqa: S105 - a test value
KEY_PASSWORD = "k3y-Pa55phrase"  # noqa: S105 - a test value
REDIS_PASSWORD = "r3dis-Pa55"  # noqa: S105 - a test value
SASL: dict[str, Any] = {
    "kafka_sasl_username": "streamrec",
    "kafka_sasl_password": PASSWORD,
}


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    """A self-signed CA certificate, and a client certificate with a password-protected key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamrec-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    encryption = serialization.BestAvailableEncryption(KEY_PASSWORD.encode())
    files = {
        "ca": cert.public_bytes(serialization.Encoding.PEM),
        "cert": cert.public_bytes(serialization.Encoding.PEM),
        "key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ),
    }
    for name_, content in files.items():
        (tmp_path / f"{name_}.pem").write_bytes(content)
    return {name_: str(tmp_path / f"{name_}.pem") for name_ in files}


def _mtls(tls_files: dict[str, str]) -> dict[str, Any]:
    return {
        "kafka_ssl_ca_location": tls_files["ca"],
        "kafka_ssl_certificate_location": tls_files["cert"],
        "kafka_ssl_key_location": tls_files["key"],
        "kafka_ssl_key_password": KEY_PASSWORD,
    }


# --- librdkafka (confluent-kafka): producers, consumers, admin clients ----------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_settings_become_librdkafka_config(mechanism: str, protocol: str) -> None:
    settings = CommonSettings(
        kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, **SASL
    )
    config = settings.kafka_config()
    assert config["security.protocol"] == protocol
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == (
        mechanism,
        "streamrec",
        PASSWORD,
    )
    assert not any(key.startswith("ssl.") for key in config)


def test_mutual_tls_settings_become_librdkafka_config(tls_files: dict[str, str]) -> None:
    config = CommonSettings(kafka_security_protocol="SSL", **_mtls(tls_files)).kafka_config()
    assert config["security.protocol"] == "SSL"
    assert config["ssl.ca.location"] == tls_files["ca"]
    assert config["ssl.certificate.location"] == tls_files["cert"]
    assert config["ssl.key.location"] == tls_files["key"]
    assert config["ssl.key.password"] == KEY_PASSWORD
    assert not any(key.startswith("sasl.") for key in config)


def test_plaintext_by_default_with_no_security_keys() -> None:
    config = CommonSettings().kafka_config()
    assert config["security.protocol"] == "PLAINTEXT"
    assert not any(key.startswith(("sasl.", "ssl.")) for key in config)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_real_librdkafka_clients_accept_the_config(
    mechanism: str, tls_files: dict[str, str]
) -> None:
    """librdkafka refuses unknown or malformed properties at construction, and with SSL it
    loads the CA, certificate and encrypted key then: a wrong name or password fails here.
    No broker is contacted."""
    settings = CommonSettings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        **SASL,
        **_mtls(tls_files),
    )
    config = settings.kafka_config()
    Producer(config).flush(0)
    Consumer({**config, "group.id": "g"}).close()
    AdminClient(config)
    with pytest.raises(Exception, match="ssl.key|key"):
        Producer({**config, "ssl.key.password": "wrong"})


def test_the_dataset_writer_keeps_the_security_config(
    monkeypatch: pytest.MonkeyPatch, tls_files: dict[str, str]
) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(writer, "Producer", lambda config: seen.append(config))
    settings = CommonSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        **SASL,
        **_mtls(tls_files),
    )
    writer.DatasetWriter(settings.kafka_config(), "d", "dl")
    [config] = seen
    assert {k: v for k, v in config.items() if k.startswith(("sasl.", "ssl.", "security."))} == {
        k: v
        for k, v in settings.kafka_config().items()
        if k.startswith(("sasl.", "ssl.", "security."))
    }


KAFKA_CLIENTS = {"Producer", "Consumer", "AdminClient"}
TAKE_KAFKA_CONFIG = {"DatasetWriter", "ensure_topics", "CompactedLog"}


def _calls(names: set[str]) -> list[tuple[str, int, str, ast.expr | None, str]]:
    """(file, line, callee, first argument, file source) of each call of `names` in the
    product (connector/ and worker/), but local dev services, which talk to a local broker."""
    found = []
    for path in sorted([*ROOT.glob("connector/**/*.py"), *ROOT.glob("worker/**/*.py")]):
        if "devservices" in path.parts:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in names:
                first = node.args[0] if node.args else None
                found.append((str(path.relative_to(ROOT)), node.lineno, name, first, source))
    return found


def _is_kafka_config(node: ast.expr | None, source: str) -> bool:
    """`settings.kafka_config()`, or the `kafka_config` a caller passed in (kept as such or
    as `self._config`)."""
    text = ast.get_source_segment(source, node) if node is not None else None
    if text is not None and isinstance(node, ast.Name) and text in _local_configs(source):
        return True
    return text is not None and (
        text.endswith(".kafka_config()") or text in ("kafka_config", "self._config")
    )


def _local_configs(source: str) -> set[str]:
    """Names assigned `<x>.kafka_config()` in the file (`config = settings.kafka_config()`,
    or one element of a tuple assignment)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        pairs = (
            zip(target.elts, value.elts, strict=False)
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            else [(target, value)]
        )
        for name, expression in pairs:
            text = ast.get_source_segment(source, expression) or ""
            if isinstance(name, ast.Name) and text.endswith(".kafka_config()"):
                names.add(name.id)
    return names


def _from_kafka_config(node: ast.expr | None, source: str) -> bool:
    """The config is kafka_config(), or a dict that starts with `**kafka_config()` and adds
    only client keys (none that would replace the address or the security settings)."""
    if not isinstance(node, ast.Dict):
        return _is_kafka_config(node, source)
    added = [key.value for key in node.keys if isinstance(key, ast.Constant)]
    return (
        node.keys[0] is None
        and _is_kafka_config(node.values[0], source)
        and None not in node.keys[1:]
        and not any(
            str(key).startswith(("bootstrap.", "security.", "sasl.", "ssl.")) for key in added
        )
    )


def test_every_kafka_client_is_built_from_kafka_config() -> None:
    """Each Producer, Consumer and AdminClient gets `settings.kafka_config()`, possibly with
    client keys added but no security key replaced; each function that takes a config in is
    given `kafka_config()`."""
    clients = _calls(KAFKA_CLIENTS)
    assert len(clients) >= 10, clients  # the scan does see the product's clients
    for file, line, name, first, source in clients:
        assert _from_kafka_config(first, source), (file, line, name)
        if "self._config" in (ast.get_source_segment(source, first) or "") if first else False:
            assert "self._config = kafka_config" in source, file
    for file, line, name, first, source in _calls(TAKE_KAFKA_CONFIG):
        assert _is_kafka_config(first, source), (file, line, name)


def test_every_redis_client_is_built_with_redis_options() -> None:
    for path in sorted([*ROOT.glob("connector/**/*.py"), *ROOT.glob("worker/**/*.py")]):
        if "devservices" in path.parts:
            continue
        for line in path.read_text().splitlines():
            if "from_url(" in line or "redis.Redis(" in line:
                assert any(part in line for part in ("redis_options()", "**short", "**options")), (
                    path,
                    line,
                )
    # `open_url` passes on what it is given; the one caller outside tests gives the settings'.
    connect = (ROOT / "connector" / "redis_client.py").read_text()
    assert "open_url(settings.redis_url, **settings.redis_options())" in connect


# --- faust / aiokafka: the connector's consumers and producers ------------------------------


def _faust_app(settings: ConnectorSettings) -> faust.App:
    unused = SimpleNamespace(process=lambda records: None)
    processors: Any = SimpleNamespace(events=unused, items=unused, users=unused, sources={})
    return connector_app.create_app(settings, processors)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_reaches_the_faust_app(mechanism: str) -> None:
    settings = ConnectorSettings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism=mechanism, **SASL
    )
    credentials = _faust_app(settings).conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("streamrec", PASSWORD)
    assert str(getattr(credentials.mechanism, "value", credentials.mechanism)) == mechanism
    assert credentials.ssl_context is None


def test_sasl_over_mutual_tls_reaches_the_faust_app(tls_files: dict[str, str]) -> None:
    settings = ConnectorSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        **SASL,
        **_mtls(tls_files),
    )
    credentials = _faust_app(settings).conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    context = credentials.ssl_context
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert any("streamrec-test" in str(ca["subject"]) for ca in context.get_ca_certs())


def test_tls_alone_reaches_the_faust_app(tls_files: dict[str, str]) -> None:
    settings = ConnectorSettings(kafka_security_protocol="SSL", **_mtls(tls_files))
    credentials = _faust_app(settings).conf.broker_credentials
    assert isinstance(credentials, faust.SSLCredentials)
    assert any("streamrec-test" in str(ca["subject"]) for ca in credentials.context.get_ca_certs())
    with pytest.raises(ssl.SSLError):  # the key password is really used to open the key
        connector_app._credentials(
            ConnectorSettings(
                kafka_security_protocol="SSL",
                **{**_mtls(tls_files), "kafka_ssl_key_password": "wrong"},
            )
        )


def test_plaintext_gives_faust_no_credentials() -> None:
    assert _faust_app(ConnectorSettings()).conf.broker_credentials is None


# --- Redis ---------------------------------------------------------------------------------


def test_redis_acl_user_password_and_tls_reach_the_client(
    monkeypatch: pytest.MonkeyPatch, tls_files: dict[str, str]
) -> None:
    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    settings = CommonSettings(
        redis_url="rediss://cache.example:6380/2",
        redis_username="streamrec",
        redis_password=REDIS_PASSWORD,
        redis_ssl_ca_certs=tls_files["ca"],
    )
    client = redis_client.connect(settings)
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("streamrec", REDIS_PASSWORD)
    assert kwargs["ssl_ca_certs"] == tls_files["ca"]
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 2)
    assert issubclass(pool.connection_class, redis.SSLConnection)


def test_a_password_in_the_url_is_used_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    settings = CommonSettings(redis_url="redis://:url-Pa55@127.0.0.1:6379/0")
    kwargs = redis_client.connect(settings).connection_pool.connection_kwargs
    assert kwargs["password"] == "url-Pa55"  # noqa: S105 - a test value
    assert "url-Pa55" not in redis_client._safe(settings.redis_url)


# --- where secrets come from, and that they are never printed -------------------------------


def test_secrets_come_from_the_environment_and_stay_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("STREAMREC_KAFKA_SSL_KEY_PASSWORD", KEY_PASSWORD)
    monkeypatch.setenv("STREAMREC_REDIS_PASSWORD", REDIS_PASSWORD)
    settings = CommonSettings()
    assert settings.kafka_config()["sasl.password"] == PASSWORD
    assert settings.redis_options()["password"] == REDIS_PASSWORD
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert not any(s in shown for s in (PASSWORD, KEY_PASSWORD, REDIS_PASSWORD)), shown
