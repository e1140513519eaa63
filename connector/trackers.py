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
from connector.kafka_log import CompactedLog, settings_log
from connector.refresh import Refresher
from connector.settings import CommonSettings

_REFRESH_INTERVAL = 5.0


@dataclass(frozen=True)
class Tracker:
    """One event tracker."""

    tracking_id: str
    group: str


class TrackerStore:
    """Create, list, delete and resolve trackers."""

    def __init__(self, log: CompactedLog) -> None:
        self._log = log
        self._next_offset = 0
        self._by_group: dict[str, Tracker] = {}
        self._refresher = Refresher(self._read_new, _REFRESH_INTERVAL)

    def refresh(self) -> None:
        """Read what was written since the last refresh."""
        self._refresher.now()

    def _read_new(self) -> None:
        for record in self._log.read_from(self._next_offset):
            self._next_offset = record.offset + 1
            if record.value is None:
                self._by_group.pop(record.key, None)
            else:
                self._by_group[record.key] = Tracker(**json.loads(record.value))

    def create(self, group: str) -> Tracker:
        """A new tracker for `group`; refused if the group already has one."""
        with self._log.exclusive() as writer:
            self.refresh()
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
        with self._log.exclusive() as writer:
            self.refresh()
            if group not in self._by_group:
                raise TrackerError(f"dataset group {group!r} has no tracker")
            writer.append(group, None)
        return self._by_group.pop(group)

    def list(self) -> list[Tracker]:
        """Every tracker, by group."""
        self.refresh()
        return sorted(self._by_group.values(), key=lambda tracker: tracker.group)

    def of_group(self, group: str) -> Tracker | None:
        """The tracker of `group`, for hot paths: the topic is re-read in the background at
        most every few seconds, so a new or deleted tracker takes effect within seconds."""
        self._refresher.in_background_if_stale()
        return self._by_group.get(group)


def open_trackers(settings: CommonSettings) -> TrackerStore:
    """The tracker store in the settings' trackers topic (created on first use)."""
    return TrackerStore(settings_log(settings, settings.trackers_topic, "streamrec-trackers"))
