"""Settings of the connector and of everything it shares with the other deployables.

Every field comes from a `STREAMREC_*` environment variable (field name upper-cased) with a
documented default; nothing else in the code reads the environment. The objects are frozen so
a running process cannot drift from what it logged at start. Passwords are `SecretStr`, which
prints as `**********` in logs and reprs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "STREAMREC_"
LIBRDKAFKA_LOGGER = "streamrec.librdkafka"
_GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class TopicNames:
    """The Kafka topics of one dataset group, resolved from the topic templates."""

    events: str
    items: str
    users: str
    interactions: str
    deadletter: str
    items_dataset: str
    users_dataset: str


class CommonSettings(BaseSettings):
    """Settings every deployable reads: the dataset group, Kafka, Redis and topic names."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    dataset_group: str = Field(
        "default",
        description="Dataset group: the namespace of topics, Redis keys, schemas and models. "
        "Lower-case letters, digits, '-' and '_'.",
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="Kafka SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="Kafka SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="Kafka SASL password (never logged)."
    )
    kafka_ssl_ca_location: str | None = Field(
        None, description="CA certificate file that signed the broker's certificate."
    )
    kafka_ssl_certificate_location: str | None = Field(
        None, description="Client certificate file for mutual TLS."
    )
    kafka_ssl_key_location: str | None = Field(
        None, description="Client private key file for mutual TLS."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of the client private key (never logged)."
    )
    kafka_replication_factor: int = Field(
        -1, description="Replication factor of topics streamrec creates; -1 = broker default."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL; rediss:// for TLS; redis+cluster:// or rediss+cluster:// and any "
        "node for a Redis Cluster (docs/deploy.md). A password may be given here or below.",
    )
    redis_username: str | None = Field(None, description="Redis ACL user name.")
    redis_password: SecretStr | None = Field(None, description="Redis password (never logged).")
    redis_socket_timeout_seconds: float = Field(
        10.0, description="How long a Redis call may wait before it fails and is retried."
    )
    redis_ssl_ca_certs: str | None = Field(
        None, description="CA certificate file for rediss:// connections."
    )
    schema_registry_url: str | None = Field(
        None,
        description="A Confluent-compatible Schema Registry (Confluent, Karapace, Apicurio's "
        "ccompat API) that holds the dataset schemas and producers' writer schemas instead of "
        "the schemas topic; unset, streamrec's own registry answers on the API's port.",
    )
    schema_registry_user_info: SecretStr | None = Field(
        None, description="user:password for the Schema Registry's basic auth (never logged)."
    )
    schema_registry_ca_location: str | None = Field(
        None, description="CA certificate file that signed the Schema Registry's certificate."
    )
    schema_registry_certificate_location: str | None = Field(
        None, description="Client certificate file for mutual TLS with the Schema Registry."
    )
    schema_registry_key_location: str | None = Field(
        None, description="Client private key file for mutual TLS with the Schema Registry."
    )
    schemas_topic: str = Field(
        "_streamrec.schemas",
        description="Compacted topic that stores the schema registry of every dataset group.",
    )
    trackers_topic: str = Field(
        "_streamrec.trackers",
        description="Compacted topic that maps each dataset group to its event tracker.",
    )
    sources_topic: str = Field(
        "_streamrec.sources",
        description="Compacted topic that stores the sources (existing topics and their "
        "mappings) of every dataset group.",
    )
    filters_topic: str = Field(
        "_streamrec.filters",
        description="Compacted topic that stores the named recommendation filters of every "
        "dataset group.",
    )
    events_topic: str = Field(
        "{group}.events", description="Topic producers publish PutEvents records to."
    )
    items_topic: str = Field("{group}.items", description="Topic of PutItems records.")
    users_topic: str = Field("{group}.users", description="Topic of PutUsers records.")
    interactions_topic: str = Field(
        "{group}.interactions",
        description="The Interactions dataset: validated events, keyed by user.",
    )
    deadletter_topic: str = Field(
        "{group}.deadletter", description="Records that failed validation, with the reason."
    )
    items_dataset_topic: str = Field(
        "{group}.items.dataset",
        description="The Items dataset: validated item rows, compacted, keyed by item id.",
    )
    users_dataset_topic: str = Field(
        "{group}.users.dataset",
        description="The Users dataset: validated user rows, compacted, keyed by user id.",
    )
    topic_partitions: int = Field(
        6, description="Partitions of the event and dataset topics streamrec creates."
    )
    history_length: int = Field(
        50,
        ge=1,
        description="Latest events kept per user or session history: what the model ranks "
        "from, read alike by the precomputed lists, the API, the dashboard and `rebuild` "
        "(docs/redis-keys.md). Items already interacted with are excluded from a longer "
        "record (STREAMREC_INTERACTED_ITEMS_MAX).",
    )
    interacted_items_max: int = Field(
        10_000,
        ge=1,
        description="Most distinct items remembered per user or session as interacted with "
        "(newest kept), so seen-item exclusion and `Interactions` filters cover far more "
        "than the history the model reads; about 130 bytes of Redis each (docs/redis-keys.md).",
    )
    interacted_items_ttl_seconds: int = Field(
        365 * 24 * 3600,
        ge=1,
        description="Idle time after which a user's or session's interacted items expire.",
    )
    serving_index_min_items: int = Field(
        50_000,
        ge=1,
        description="Catalogue size from which the API and the precomputed lists rank "
        "candidates from an approximate nearest-neighbour index (faiss IVF, built once per "
        "model version when it is loaded) instead of scoring every item.",
    )

    @field_validator("dataset_group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if not _GROUP_NAME.match(value):
            raise ValueError(
                f"dataset group {value!r} must be 1-63 characters of a-z, 0-9, '-' or '_', "
                "starting with a letter or digit"
            )
        return value

    @property
    def topics(self) -> TopicNames:
        """Topic names of this dataset group, with `{group}` filled in."""
        fill = self.dataset_group
        return TopicNames(
            events=self.events_topic.format(group=fill),
            items=self.items_topic.format(group=fill),
            users=self.users_topic.format(group=fill),
            interactions=self.interactions_topic.format(group=fill),
            deadletter=self.deadletter_topic.format(group=fill),
            items_dataset=self.items_dataset_topic.format(group=fill),
            users_dataset=self.users_dataset_topic.format(group=fill),
        )

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka client configuration (security included) for producers, consumers, admin."""
        optional = {
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": _reveal(self.kafka_sasl_password),
            "ssl.ca.location": self.kafka_ssl_ca_location,
            "ssl.certificate.location": self.kafka_ssl_certificate_location,
            "ssl.key.location": self.kafka_ssl_key_location,
            "ssl.key.password": _reveal(self.kafka_ssl_key_password),
        }
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
            # librdkafka logs through Python logging, so it follows streamrec's log level.
            "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        return config

    def schema_registry_config(self) -> dict[str, Any]:
        """confluent-kafka's SchemaRegistryClient configuration for schema_registry_url."""
        optional = {
            "basic.auth.user.info": _reveal(self.schema_registry_user_info),
            "ssl.ca.location": self.schema_registry_ca_location,
            "ssl.certificate.location": self.schema_registry_certificate_location,
            "ssl.key.location": self.schema_registry_key_location,
        }
        config: dict[str, Any] = {"url": self.schema_registry_url}
        config.update({key: value for key, value in optional.items() if value is not None})
        return config

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments for `redis.Redis.from_url` beyond the URL itself."""
        optional = {
            "socket_timeout": self.redis_socket_timeout_seconds,
            "socket_connect_timeout": self.redis_socket_timeout_seconds,
            "username": self.redis_username,
            "password": _reveal(self.redis_password),
            "ssl_ca_certs": self.redis_ssl_ca_certs,
        }
        return {key: value for key, value in optional.items() if value is not None}


class ConnectorSettings(CommonSettings):
    """Settings of the `streamrec connector` process (the ingest path); grows with the connector."""

    connector_consumer_group: str = Field(
        "streamrec-connector-{group}", description="Kafka consumer group of the connector."
    )
    connector_batch_size: int = Field(
        1000, ge=1, description="Most records handed to the ingest path in one batch."
    )
    connector_batch_seconds: float = Field(
        0.05, gt=0, description="Longest wait for a batch to fill before it is processed anyway."
    )
    connector_batches_in_flight: int = Field(
        8,
        ge=2,
        description="Most batches written and not yet through their list refresh, the one "
        "writing included; when the refresh falls behind, the fetch loop waits, so at most "
        "this many times connector_batch_size records are uncommitted.",
    )
    connector_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=1500,
        description="Longest the broker holds a fetch that finds no new records. While the "
        "ingest path is busy, the only fetch in flight may hold just idle partitions; the "
        "busy partitions are fetched again only once it returns (docs/performance-log.md, "
        "Serving).",
    )
    connector_session_timeout_seconds: float = Field(
        30.0,
        description="Kafka group session timeout: how soon a crashed connector's partitions "
        "move to the others.",
    )
    connector_append_timeout_seconds: float = Field(
        30.0,
        gt=0.0,
        description="How long the connector waits for the broker to confirm a batch's "
        "dataset and dead-letter appends before the batch fails and is retried with backoff.",
    )
    connector_web_port: int = Field(
        6066, description="Port of the connector's /healthz, /readyz and /metrics."
    )
    history_ttl_seconds: int = Field(
        30 * 24 * 3600, description="Idle time after which a history expires from Redis."
    )
    dedup_window_seconds: int = Field(
        7 * 24 * 3600,
        description="Event-time window in which identical events are recognised as duplicates.",
    )
    dedup_max_markers: int = Field(
        10_000, description="Dedup markers kept per user or session (oldest dropped first)."
    )
    metrics_bucket_seconds: int = Field(
        60, description="Width of the time buckets of event-type and attribution counts."
    )
    lists_enabled: bool = Field(
        True,
        description="Keep a precomputed recommendation list per user, refreshed as events "
        "arrive and when a model version is published.",
    )
    lists_refresh_processes: int = Field(
        1,
        ge=0,
        le=64,
        description="Child processes of the connector that refresh the precomputed lists, "
        "each batch's users split between them, on cores of their own beside ingest (a batch "
        "is still acknowledged only once its lists are written); 0 refreshes them in the "
        "connector's own process.",
    )
    lists_refresh_timeout_seconds: float = Field(
        120.0,
        gt=0.0,
        description="How long a batch waits for the list refresh process (and, when it "
        "starts, for it to load the model) before the batch fails and is retried with a new "
        "process.",
    )
    lists_new_version_users: int = Field(
        100_000,
        ge=0,
        description="Most recently active users and sessions whose lists are refreshed when "
        "a model version is published (the others get theirs with their next event); users "
        "whose events arrived before any version count as active, so the first FULL after "
        "an import gives them lists.",
    )
    lists_new_version_rate: float = Field(
        2_000.0,
        ge=0.0,
        description="Most lists a second refreshed after a new version, so that the refresh "
        "leaves the batches' own list refreshes their pace; 0 for no limit. How long a "
        "number of users takes: docs/performance.md.",
    )
    lists_size: int = Field(100, ge=1, le=500, description="Items in each precomputed list.")
    lists_exploration_weight: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Most share of a precomputed list given to exploration, and how far below "
        "the user's top a new item may score and still be explored: docs/model.md.",
    )
    lists_exploration_item_age_cut_off_days: float = Field(
        30.0, gt=0.0, description="Only items this recent (days) are explored in lists."
    )
    lists_filter: str | None = Field(
        None,
        description="Name of a filter (`streamrec filters create`) every precomputed list goes "
        "through, e.g. one excluding purchased items; without $parameters.",
    )

    @property
    def consumer_group(self) -> str:
        """The connector's consumer group with `{group}` filled in."""
        return self.connector_consumer_group.format(group=self.dataset_group)


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
