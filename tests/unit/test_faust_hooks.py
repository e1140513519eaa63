"""The private parts of faust that connector/batch_consumer.py builds on are still there.

The batch consumer replaces faust's per-message delivery and keeps its bookkeeping, so it
calls and reads names faust does not promise to keep. pyproject.toml pins faust-streaming to
the minor version this was written against; this test says which name moved when a new
version is tried, before any broker does."""

from __future__ import annotations

import asyncio
import inspect

import aiokafka
import faust
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

from connector.batch_consumer import BatchApp, BatchConsumerThread

# method name -> the parameters the batch consumer passes (after self)
METHODS = {
    "_drain_messages": ["fetcher"],  # overridden: the fetcher service's loop
    "_wait_next_records": ["timeout"],
    "_add_gap": ["tp", "offset_from", "offset_to"],
    "_to_message": ["tp", "record"],
    "wait_empty": [],
    "on_init": [],
    "_new_consumer_thread": [],
}
# attributes Consumer.__init__ sets, which the batch consumer reads or updates
STATE = [
    "_read_offset",
    "_committed_offset",
    "_acked_index",
    "_acked",
    "_waiting_for_ack",
    "suspend_flow",
]


def test_the_consumer_methods_the_batch_consumer_uses_keep_their_parameters() -> None:
    for name, parameters in METHODS.items():
        method = getattr(faust_aiokafka.Consumer, name, None)
        assert method is not None, f"faust's Consumer has no {name}"
        assert list(inspect.signature(method).parameters)[1:] == parameters, name


def test_the_consumer_state_the_batch_consumer_reads_is_set_where_it_was() -> None:
    source = inspect.getsource(Consumer.__init__)
    missing = [name for name in STATE if f"self.{name}" not in source]
    assert not missing, f"faust's Consumer.__init__ no longer sets {missing}"
    assert isinstance(inspect.getattr_static(Consumer, "_n_acked"), int)  # a class default
    assert "self._stopped" in inspect.getsource(Service.__init__)


def test_the_app_hooks_the_batch_app_uses_are_there() -> None:
    assert callable(getattr(faust.App, "_new_transport", None))
    assert isinstance(inspect.getattr_static(faust.App, "consumer_generation_id"), int)


def test_the_worker_consumer_gets_the_apps_fetch_max_wait() -> None:
    """faust fixes fetch_max_wait_ms at 1500; BatchConsumerThread sets the app's on the
    aiokafka consumer it builds, which passes it to its fetcher when it starts."""

    async def built() -> int:
        app = BatchApp(
            "hooks",
            batch_size=10,
            batch_seconds=0.1,
            fetch_max_wait_ms=77,
            broker="kafka://127.0.0.1:1",  # never connected: the consumer is only built
            store="memory://",
        )
        thread = app.consumer._thread
        assert isinstance(thread, BatchConsumerThread)
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(built()) == 77
    start = inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start
