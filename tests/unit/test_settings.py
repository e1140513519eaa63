"""Settings come from STREAMREC_* variables, are frozen, and never show a secret."""

from __future__ import annotations

import pydantic
import pytest

from connector.settings import CommonSettings, ConnectorSettings
from connector.settings_doc import render, settings_classes
from tests.conftest import EXAMPLES

DOC = EXAMPLES.parents[1] / "docs" / "configuration.md"


def test_fields_are_read_from_streamrec_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_DATASET_GROUP", "shop")
    monkeypatch.setenv("STREAMREC_KAFKA_BOOTSTRAP", "k1:9093,k2:9093")
    monkeypatch.setenv("STREAMREC_EVENTS_TOPIC", "prod.{group}.events")
    settings = ConnectorSettings()
    assert settings.dataset_group == "shop"
    assert settings.kafka_config()["bootstrap.servers"] == "k1:9093,k2:9093"
    assert settings.topics.events == "prod.shop.events"
    assert settings.topics.interactions == "shop.interactions"


def test_sasl_and_ssl_options_reach_the_kafka_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", "s3cret-kafka")
    monkeypatch.setenv("STREAMREC_KAFKA_SSL_CA_LOCATION", "/etc/ca.pem")
    config = CommonSettings().kafka_config()
    assert {
        k: config[k]
        for k in (
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "sasl.password",
            "ssl.ca.location",
        )
    } == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret-kafka",
        "ssl.ca.location": "/etc/ca.pem",
    }


def test_redis_credentials_reach_the_redis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_REDIS_USERNAME", "app")
    monkeypatch.setenv("STREAMREC_REDIS_PASSWORD", "s3cret-redis")
    monkeypatch.setenv("STREAMREC_REDIS_SSL_CA_CERTS", "/etc/redis-ca.pem")
    monkeypatch.setenv("STREAMREC_REDIS_SOCKET_TIMEOUT_SECONDS", "2.5")
    assert CommonSettings().redis_options() == {
        "socket_timeout": 2.5,
        "socket_connect_timeout": 2.5,
        "username": "app",
        "password": "s3cret-redis",
        "ssl_ca_certs": "/etc/redis-ca.pem",
    }


def test_secrets_never_appear_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", "s3cret-kafka")
    monkeypatch.setenv("STREAMREC_REDIS_PASSWORD", "s3cret-redis")
    settings = CommonSettings()
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "s3cret" not in shown and "**********" in shown


def test_settings_are_frozen() -> None:
    settings = CommonSettings()
    with pytest.raises(pydantic.ValidationError):
        settings.dataset_group = "other"  # type: ignore[misc]


@pytest.mark.parametrize("group", ["Shop", "a/b", "", "x" * 64, "streamrec:*"])
def test_bad_group_name_is_refused_at_start(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_DATASET_GROUP", group)
    with pytest.raises(pydantic.ValidationError, match="dataset group"):
        CommonSettings()


def test_configuration_doc_matches_the_settings_classes() -> None:
    assert DOC.read_text() == render(settings_classes()), (
        "docs/configuration.md is stale: run `streamrec config docs > docs/configuration.md`"
    )


def test_configuration_doc_lists_every_variable_once() -> None:
    text = DOC.read_text()
    for cls in settings_classes():
        for name in cls.model_fields:
            assert text.count(f"`STREAMREC_{name.upper()}`") == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONNECTOR_BATCH_SIZE", "0"),
        ("CONNECTOR_BATCH_SIZE", "-5"),
        ("CONNECTOR_BATCH_SECONDS", "0"),
    ],
)
def test_batch_settings_out_of_range_are_refused_at_start(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"STREAMREC_{name}", value)
    with pytest.raises(pydantic.ValidationError, match=name.lower()):
        ConnectorSettings()
