"""The harness reaches a real broker and a real Redis server, through the product's own code."""

from __future__ import annotations

import uuid

import pytest
import redis
from confluent_kafka import Consumer, Producer
from redis.cluster import RedisCluster

from connector import redis_client
from connector.exceptions import RedisUnavailableError
from connector.kafka_admin import TopicSpec, ensure_topics
from connector.redis_client import RedisClient
from connector.settings import CommonSettings


def test_produce_and_consume_through_the_real_broker(settings: CommonSettings) -> None:
    topic = settings.topics.events
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, partitions=3)])
    producer = Producer(settings.kafka_config())
    sent = {f"user-{n}".encode(): f"event-{n}".encode() for n in range(20)}
    for key, value in sent.items():
        producer.produce(topic, value, key=key)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"{settings.dataset_group}-c",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    try:
        for _ in range(300):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                received[message.key()] = message.value()
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert received == sent


def test_existing_topic_is_left_as_it_is(settings: CommonSettings) -> None:
    topic = settings.topics.items
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, partitions=2)])
    ensure_topics(settings.kafka_config(), [TopicSpec(topic, partitions=5)])
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(settings.kafka_config()).list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 2


def test_write_and_read_the_real_redis(settings: CommonSettings, redis_db: redis.Redis) -> None:
    client = redis_client.connect(settings)
    key = f"streamrec:{settings.dataset_group}:probe"
    client.hset(key, mapping={"a": "1", "b": "2"})
    assert redis_db.hgetall(key) == {b"a": b"1", b"b": b"2"}


def test_redis_acl_user_from_settings(settings: CommonSettings, redis_db: RedisClient) -> None:
    user, password = f"u{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    servers = _servers(redis_db)  # a cluster's users are each node's own
    for server in servers:
        server.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=[f"streamrec:{settings.dataset_group}:*"],
            commands=["+@all"],
        )
    try:
        ok = settings.model_copy(update={"redis_username": user})
        allowed = redis_client.connect(CommonSettings(**{**_plain(ok), "redis_password": password}))
        assert allowed.set(f"streamrec:{settings.dataset_group}:acl", "1")
        with pytest.raises(RedisUnavailableError, match="refused the credentials"):
            redis_client.connect(CommonSettings(**{**_plain(ok), "redis_password": "wrong"}))
    finally:
        for server in servers:
            server.acl_deluser(user)


def _servers(client: RedisClient) -> list[redis.Redis]:
    """The client itself, or a client of each node of a cluster."""
    if isinstance(client, RedisCluster):
        return [node.redis_connection for node in client.get_nodes()]  # type: ignore[misc]
    return [client]


def test_unreachable_redis_fails_at_start_with_the_address(settings: CommonSettings) -> None:
    from connector.devservices.process import free_port

    dead = CommonSettings(**{**_plain(settings), "redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(RedisUnavailableError, match="does not answer"):
        redis_client.connect(dead)


def _plain(settings: CommonSettings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in CommonSettings.model_fields}
