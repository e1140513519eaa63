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
