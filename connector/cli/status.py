"""`streamrec status`: services, topics with the connector's lag, the served model version,
recent throughput and dead letters of one dataset group, on one screen.

The probes are plain functions (topic sizes, consumer lag, latest dead letter) because the
demo prints the same figures while it replays events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from connector import redis_client
from connector.cli.options import group_option
from connector.devservices import kafka as local_kafka
from connector.devservices import redis as local_redis
from connector.keys import Keys
from connector.settings import ConnectorSettings
from connector.stores.counters import recent_buckets
from connector.stores.model_versions import ModelStore, VersionInfo

_TIMEOUT = 5.0
_HEADLINE = ("ndcg@10", "hr@10", "mrr@25", "coverage")


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


def topic_states(settings: ConnectorSettings) -> list[TopicState]:
    """Every topic of the group; lag of the connector's consumer group on its inputs."""
    topics = settings.topics
    inputs = [topics.events, topics.items, topics.users]
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


@click.command()
@group_option
@click.option("--buckets", default=5, show_default=True, help="Recent throughput buckets shown.")
def status(group: str | None, buckets: int) -> None:
    """Show, on one screen: whether Kafka and Redis answer, the group's topics with their
    records and the connector's lag, the served model version with its offline metrics,
    recent throughput (the counters `streamrec metrics` reads) and the dead letters.

    Exits with status 1 when Kafka or Redis does not answer.

    \b
    Example:
      streamrec status --group demo
    """
    settings = ConnectorSettings(dataset_group=group) if group else ConnectorSettings()
    click.echo(f"streamrec status: dataset group {settings.dataset_group!r}")
    kafka_ok = local_kafka.answers(settings.kafka_bootstrap)
    redis_ok = local_redis.answers(settings.redis_url)
    click.echo("services")
    click.echo(f"  Kafka  {settings.kafka_bootstrap:<32} {_answer(kafka_ok)}")
    click.echo(f"  Redis  {_masked(settings.redis_url):<32} {_answer(redis_ok)}")
    if kafka_ok:
        _kafka_section(settings)
    if redis_ok:
        _redis_section(settings, buckets)
    if not (kafka_ok and redis_ok):
        raise click.ClickException(
            "start the services (`streamrec dev up`) or point STREAMREC_KAFKA_BOOTSTRAP and "
            "STREAMREC_REDIS_URL at running ones"
        )


def _answer(ok: bool) -> str:
    return "answers" if ok else "DOES NOT ANSWER"


def _masked(url: str) -> str:
    """The URL without a password, should it carry one."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _kafka_section(settings: ConnectorSettings) -> None:
    try:
        states = topic_states(settings)
        reason = latest_dead_letter(settings)
    except KafkaException as exc:
        click.echo(f"topics: could not be read ({exc})")
        return
    click.echo(f"topics (connector consumer group {settings.consumer_group})")
    click.echo(f"  {'topic':<40} {'records':>10} {'lag':>8}")
    for state in states:
        records = f"{state.records:,}" if state.exists else "missing"
        lag = "" if state.lag is None else f"{state.lag:,}"
        click.echo(f"  {state.name:<40} {records:>10} {lag:>8}")
    dead = next(s.records for s in states if s.name == settings.topics.deadletter)
    latest = f" (latest: {reason})" if reason else ""
    click.echo(f"dead letters: {dead:,}{latest}")


def _redis_section(settings: ConnectorSettings, last: int) -> None:
    client = redis_client.connect(settings)
    keys = Keys(settings.dataset_group)
    try:
        click.echo(_model_line(ModelStore(client, keys)))
        _throughput(client, keys, last, settings.metrics_bucket_seconds)
    except redis.RedisError as exc:
        click.echo(f"Redis could not be read: {exc}")


def _model_line(store: ModelStore) -> str:
    current = next((info for info in store.versions() if info.current), None)
    if current is None:
        return "model: none published yet (streamrec train --mode full)"
    return f"model: {_describe(current, store.meta(current.version))}"


def _describe(info: VersionInfo, meta: dict[str, Any]) -> str:
    created = info.created.strftime("%Y-%m-%d %H:%M:%SZ")
    metrics = "  ".join(f"{n}={info.metrics[n]:.4f}" for n in _HEADLINE if n in info.metrics)
    data = meta.get("data", {})
    trained = (
        f", {meta.get('mode', '?')} on {data.get('interactions', 0):,} interactions "
        f"in {meta.get('training_seconds', 0):.1f} s"
    )
    return f"{info.version} (created {created}, {info.items:,} items{trained})\n  {metrics}"


def _throughput(client: redis.Redis, keys: Keys, last: int, width: int) -> None:
    buckets = recent_buckets(client, keys, last)
    if not buckets:
        click.echo("throughput: no events counted yet")
        return
    click.echo(f"throughput (events per {width} s bucket of event time)")
    for counts in buckets:
        total = sum(counts.by_type.values())
        start = datetime.fromtimestamp(counts.bucket, UTC).strftime("%Y-%m-%d %H:%M")
        types = ", ".join(f"{name}={n:,}" for name, n in counts.by_type.items())
        click.echo(f"  {start}  {total:>8,} events  {total / width:>8.1f}/s  {types}")
