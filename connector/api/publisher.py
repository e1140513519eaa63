"""Publishing records from the API's event loop, each awaited until the broker has it.

HTTP intake (intake.py) answers 200 only once the records are durable, so every produce is
awaited to its delivery report. confluent-kafka's Producer does the work (idempotent, acks
all, librdkafka's batching); this module only bridges its delivery callbacks to asyncio
futures, with one thread serving them. confluent_kafka.aio.AIOProducer was not used: it
buffers records in Python until a batch fills or its buffer timeout passes, and serves
delivery reports only when it sends the next batch, so a lone request would wait for
traffic that may not come.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from connector.exceptions import KafkaUnavailableError
from connector.settings import CommonSettings

_POLL_SECONDS = 0.1  # how long the delivery thread waits for a report before looking again


class Publisher:
    """An idempotent producer whose `publish` resolves when the broker acknowledged."""

    def __init__(self, settings: CommonSettings, linger_ms: float = 2.0) -> None:
        self._producer = Producer(
            {
                **settings.kafka_config(),
                "enable.idempotence": True,  # implies acks=all and ordered, unduplicated retries
                "linger.ms": linger_ms,
                "delivery.timeout.ms": 30_000,
            }
        )
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="intake-deliveries", daemon=True)
        self._thread.start()

    async def publish(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Send (topic, key, value) records; return once the broker has every one, or raise
        KafkaUnavailableError with the first failure."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in records]
        for (topic, key, value), future in zip(records, futures, strict=True):
            try:
                self._producer.produce(topic, value, key, on_delivery=_reporter(loop, future))
            except (BufferError, KafkaException) as exc:
                for pending in futures:
                    if not pending.done():
                        pending.cancel()  # a report that still comes finds it done
                raise KafkaUnavailableError(f"the producer refused a record: {exc}") from exc
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, BaseException):  # every outcome taken, none left unread
                raise outcome

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the delivery thread."""
        self._producer.flush(timeout)
        self._stopped.set()
        self._thread.join(timeout)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            self._producer.poll(_POLL_SECONDS)


def _reporter(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Any:
    """A delivery callback (run on the delivery thread) that settles `future` on `loop`."""

    def settle(error: KafkaError | None, _message: Any) -> None:
        try:
            loop.call_soon_threadsafe(_settle, future, error)
        except RuntimeError:
            pass  # the loop closed after the request gave up: nobody awaits this report

    return settle


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaUnavailableError(f"the broker did not take a record: {error}"))
