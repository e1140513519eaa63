"""Creating the topics streamrec owns, idempotently, with the settings they need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connector.exceptions import KafkaUnavailableError


@dataclass(frozen=True)
class TopicSpec:
    """A topic streamrec needs: its name, partitions and topic-level configuration."""

    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def ensure_topics(
    kafka_config: dict[str, Any],
    topics: list[TopicSpec],
    replication_factor: int = -1,
    timeout: float = 30.0,
) -> None:
    """Create each topic that does not exist yet; existing topics are left as they are."""
    admin = AdminClient(kafka_config)
    wanted = [
        NewTopic(spec.name, spec.partitions, replication_factor, config=spec.config)
        for spec in topics
    ]
    futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailableError(f"could not create topic {name}: {exc}") from exc


def topic_exists(kafka_config: dict[str, Any], topic: str, timeout: float = 30.0) -> bool:
    """Whether `topic` exists on the cluster. The metadata of every topic is read, not of
    `topic` alone: asking for one topic's metadata creates it on brokers that auto-create."""
    admin = AdminClient(kafka_config)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"could not read the metadata of topic {topic}: {exc}") from exc
    found = metadata.topics.get(topic)
    return found is not None and found.error is None
