"""What the group's Kafka topics hold: records per topic, the connector's lag and the latest
dead letter. Plain functions, read by `streamrec status`, the dashboard and the demo alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connector.settings import ConnectorSettings

_TIMEOUT = 5.0


@dataclass(frozen=True)
class TopicState:
    """Records in a topic (high minus low watermarks) and, for a topic the connector reads,
    how many it has not committed yet."""

    name: str
    exists: bool
    records: int
    lag: int | None


def _consumer(settings: ConnectorSettings, group_id: str | None = None) -> Consumer:
    return Consumer(
        {
            **settings.kafka_config(),
            "group.id": group_id or f"streamrec-status-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )


def topic_states(settings: ConnectorSettings, sources: tuple[str, ...] = ()) -> list[TopicState]:
    """Every topic of the group, and the topics of its `sources`; lag of the connector's
    consumer group on its inputs."""
    topics = settings.topics
    inputs = [topics.events, topics.items, topics.users, *sources]
    outputs = [topics.interactions, topics.deadletter, topics.items_dataset, topics.users_dataset]
    consumer = _consumer(settings, settings.consumer_group)
    try:
        listed = consumer.list_topics(timeout=_TIMEOUT).topics
        return [_state(consumer, name, listed, name in inputs) for name in inputs + outputs]
    finally:
        consumer.close()


def _state(consumer: Consumer, name: str, listed: dict[str, Any], is_input: bool) -> TopicState:
    if name not in listed or listed[name].error is not None:
        return TopicState(name, False, 0, None)
    partitions = [TopicPartition(name, p) for p in sorted(listed[name].partitions)]
    marks = [consumer.get_watermark_offsets(tp, timeout=_TIMEOUT) for tp in partitions]
    records = sum(high - low for low, high in marks)
    if not is_input:
        return TopicState(name, True, records, None)
    committed = consumer.committed(partitions, timeout=_TIMEOUT)
    lag = sum(
        uncommitted_between(tp.offset, low, high)
        for tp, (low, high) in zip(committed, marks, strict=True)
    )
    return TopicState(name, True, records, lag)


def uncommitted_between(committed: int, first: int, end: int) -> int:
    """Records at offsets [first, end) of a partition that a consumer group whose committed
    offset (the next one it will read; negative when it has none) is `committed` has not
    processed yet."""
    return max(0, end - max(committed, first))


def connector_lag(settings: ConnectorSettings) -> int:
    """Records of the input topics the connector has not committed yet (0: all processed)."""
    return sum(state.lag or 0 for state in topic_states(settings) if state.lag is not None)


def connector_behind(
    settings: ConnectorSettings, topic: str, offsets: dict[int, tuple[int, int]]
) -> int:
    """Records of `topic` at the given offsets (partition -> [first, end)) that the connector's
    consumer group has not committed yet: 0 once it has committed past all of them. Unlike
    `connector_lag`, records published after them (live events, say) do not count."""
    consumer = _consumer(settings, settings.consumer_group)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(offsets)]
        committed = consumer.committed(partitions, timeout=_TIMEOUT) if partitions else []
        return sum(uncommitted_between(tp.offset, *offsets[tp.partition]) for tp in committed)
    finally:
        consumer.close()


def topic_records(settings: ConnectorSettings, topic: str) -> int:
    """Records in `topic` now (0 when it does not exist)."""
    consumer = _consumer(settings)
    try:
        listed = consumer.list_topics(topic, timeout=_TIMEOUT).topics
        return _state(consumer, topic, listed, False).records
    finally:
        consumer.close()


def latest_dead_letter(settings: ConnectorSettings) -> str | None:
    """The reason of the newest dead letter (by partition end), or None when there is none."""
    topic = settings.topics.deadletter
    consumer = _consumer(settings)
    try:
        listed = consumer.list_topics(topic, timeout=_TIMEOUT).topics
        if topic not in listed or listed[topic].error is not None:
            return None
        newest: tuple[int, str] | None = None
        for partition in listed[topic].partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=_TIMEOUT
            )
            if high > low:
                newest = max(newest or (0, ""), _last_reason(consumer, topic, partition, high))
        return newest[1] if newest else None
    finally:
        consumer.close()


def _last_reason(consumer: Consumer, topic: str, partition: int, high: int) -> tuple[int, str]:
    """(timestamp ms, reason) of the last record of one partition."""
    consumer.assign([TopicPartition(topic, partition, high - 1)])
    message = consumer.poll(_TIMEOUT)
    if message is None or message.error():
        return (0, "")
    headers = dict(message.headers() or [])
    raw = headers.get("streamrec.reason") or b""
    reason = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return (message.timestamp()[1], reason)
