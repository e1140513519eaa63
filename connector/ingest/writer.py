"""Appends to the Interactions dataset and the dead-letter topic, confirmed before commit.

Dataset records are keyed by user so each user's events stay in order in one partition; the
value is the row in the Confluent wire format under the registered Interactions schema id;
headers carry what the row does not (session, dedup marker, where the event came from), so
training can stitch sessions and drop the rare duplicate a crash between append and commit
leaves behind. Dead letters keep the original key and bytes untouched; the reason and origin
travel in headers.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

from connector import wire
from connector.exceptions import KafkaUnavailableError
from connector.kafka_produce import produce
from connector.records import AcceptedEvent, DeadLetter

Headers = list[tuple[str, str | bytes | None]]
# A dead letter is an input record (up to the broker's default limit of about 1 MiB, which a
# producer may reach) plus headers; the dead-letter topic and this producer allow twice that,
# so no record a producer could publish is too large to be dead-lettered.
MAX_DEAD_LETTER_BYTES = 2 * 1024 * 1024


class DatasetWriter:
    """One idempotent producer for a dataset topic and the group's dead-letter topic."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        dataset_topic: str,
        deadletter_topic: str,
        timeout: float = 30.0,
    ) -> None:
        self._producer = Producer(
            {
                **kafka_config,
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.max.bytes": MAX_DEAD_LETTER_BYTES,
                # flush() waits for every record either way; a report (and a Python
                # callback) per record is work spent only to learn of the failures.
                "delivery.report.only.error": True,
            }
        )
        self._dataset = dataset_topic
        self._deadletter = deadletter_topic
        self._timeout = timeout
        self._errors: list[str] = []

    def write(
        self,
        events: list[AcceptedEvent],
        dead: list[DeadLetter],
        schema_id: int,
        parsed: dict[str, Any],
    ) -> None:
        """Append `events` and `dead`, and return only once the broker has them all."""
        for event in events:
            self._send(
                self._dataset,
                event.subject.id.encode(),
                wire.encode(schema_id, parsed, event.row),
                _event_headers(event),
            )
        self._dead_letters(dead)
        self._confirm()

    def write_rows(
        self,
        rows: list[tuple[str, dict[str, Any] | None]],
        dead: list[DeadLetter],
        schema_id: int,
        parsed: dict[str, Any],
    ) -> None:
        """Append (key, row) pairs, a row None as a tombstone, and `dead`; return once the
        broker has them all."""
        for key, row in rows:
            value = None if row is None else wire.encode(schema_id, parsed, row)
            self._send(self._dataset, key.encode(), value, [])
        self._dead_letters(dead)
        self._confirm()

    def _dead_letters(self, dead: list[DeadLetter]) -> None:
        for letter in dead:
            source = letter.source
            self._send(self._deadletter, source.key, source.value, _dead_headers(letter))

    def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        produce(self._producer, topic, value, key, headers=headers, on_delivery=self._done)

    def _done(self, err: Any, _message: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _confirm(self) -> None:
        remaining = self._producer.flush(self._timeout)
        if remaining:
            self._drop_queued()
        errors, self._errors = self._errors, []
        if remaining or errors:
            raise KafkaUnavailableError(
                f"{remaining} records unconfirmed, {len(errors)} failed: {errors[:3]}"
            )

    def _drop_queued(self) -> None:
        """After a timed-out append, drop what is still queued (the caller retries the whole
        batch), so each retry does not leave one more copy to be sent once the broker is
        back; records already in flight cannot be recalled and may arrive once more."""
        self._producer.purge(in_queue=True, in_flight=False)
        self._producer.poll(0)  # serve the purged records' delivery reports now


def _origin(letter_or_event: AcceptedEvent | DeadLetter) -> Headers:
    source = letter_or_event.source
    return [
        ("streamrec.topic", source.topic.encode()),
        ("streamrec.partition", str(source.partition).encode()),
        ("streamrec.offset", str(source.offset).encode()),
    ]


def _event_headers(event: AcceptedEvent) -> Headers:
    by_id = [("streamrec.event_marker", marker.encode()) for marker in event.markers[1:2]]
    return [
        *by_id,  # the eventId's dedup marker, for rebuild
        *_origin(event),
        ("streamrec.event_index", str(event.event_index).encode()),
        ("streamrec.session_id", event.session_id.encode()),
        # whose keys, and the attribution counted (a served list's source lives in Redis
        # only): rebuild restores the same state from these after Redis is lost
        ("streamrec.subject", event.subject.kind.encode()),
        ("streamrec.attribution", event.attribution.encode()),
        ("streamrec.marker", event.markers[0].encode()),
    ]


def _dead_headers(letter: DeadLetter) -> Headers:
    headers = [*_origin(letter), ("streamrec.reason", letter.reason.encode())]
    if letter.event_index is not None:
        headers.append(("streamrec.event_index", str(letter.event_index).encode()))
    return headers
