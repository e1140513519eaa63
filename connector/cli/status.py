"""`streamrec status`: services, topics with the connector's lag, the served model version,
recent throughput and dead letters of one dataset group, on one screen.

The probes (topic sizes, consumer lag, latest dead letter) live in connector/topic_state.py,
which the dashboard and the demo read too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import redis
from confluent_kafka import KafkaException

from connector import redis_client
from connector.cli.options import group_option
from connector.devservices import kafka as local_kafka
from connector.devservices import redis as local_redis
from connector.keys import Keys
from connector.redis_client import RedisClient
from connector.settings import ConnectorSettings
from connector.stores.counters import recent_buckets
from connector.stores.model_versions import ModelStore, VersionInfo
from connector.topic_state import latest_dead_letter, topic_states

_HEADLINE = ("ndcg@10", "hr@10", "mrr@25", "coverage")


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


def _throughput(client: RedisClient, keys: Keys, last: int, width: int) -> None:
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
