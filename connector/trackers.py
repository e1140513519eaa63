"""Event trackers: a tracking id names the one dataset group its events belong to.

As in Personalize, a dataset group has at most one tracker. Trackers are a source of truth,
so they live in a compacted Kafka topic (keyed by group; deletion is a tombstone), read by
the connector at start and re-read in the background every few seconds.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from connector.exceptions import TrackerError
from connector.kafka_log import CompactedLog, LogRecord, settings_log
from connector.settings import CommonSettings
from connector.topic_view import TopicView

_REREAD_INTERVAL = 5.0


@dataclass(frozen=True)
class Tracker:
    """One event tracker."""

    tracking_id: str
    group: str


class TrackerStore(TopicView):
    """Create, list, delete and resolve trackers."""

    def __init__(self, log: CompactedLog) -> None:
        super().__init__(log, _REREAD_INTERVAL)
        self._by_group: dict[str, Tracker] = {}

    def _apply(self, record: LogRecord) -> None:
        if record.value is None:
            self._by_group.pop(record.key, None)
        else:
            self._by_group[record.key] = Tracker(**json.loads(record.value))

    def create(self, group: str) -> Tracker:
        """A new tracker for `group`; refused if the group already has one."""
        with self._exclusive() as writer:
            if group in self._by_group:
                existing = self._by_group[group].tracking_id
                raise TrackerError(
                    f"dataset group {group!r} already has tracker {existing}; "
                    "a dataset group has one tracker (delete it first)"
                )
            tracker = Tracker(str(uuid.uuid4()), group)
            writer.append(group, json.dumps(tracker.__dict__).encode())
        self._by_group[group] = tracker
        return tracker

    def delete(self, group: str) -> Tracker:
        """Delete the tracker of `group`; its id stops being accepted."""
        with self._exclusive() as writer:
            if group not in self._by_group:
                raise TrackerError(f"dataset group {group!r} has no tracker")
            writer.append(group, None)
        return self._by_group.pop(group)

    def list(self) -> list[Tracker]:
        """Every tracker, by group."""
        self.reread()
        return sorted(self._by_group.values(), key=lambda tracker: tracker.group)

    def of_group(self, group: str) -> Tracker | None:
        """The tracker of `group`, for hot paths: the topic is re-read in the background at
        most every few seconds, so a new or deleted tracker takes effect within seconds."""
        self.reread_if_stale()
        return self._by_group.get(group)


def open_trackers(settings: CommonSettings) -> TrackerStore:
    """The tracker store in the settings' trackers topic (created on first use)."""
    return TrackerStore(settings_log(settings, settings.trackers_topic, "streamrec-trackers"))
