"""Named filters of a dataset group, kept in a compacted Kafka topic like trackers.

A filter is configuration someone wrote, not state streamrec can rebuild, so it does not
belong in Redis (which holds only rebuildable serving state, docs/architecture.md): it is one
record of the compacted `STREAMREC_FILTERS_TOPIC`, keyed `<group>/<name>`, its value the
expression as written (JSON), a tombstone on delete. The expression is parsed before it is
written, so a malformed one is refused at creation with its position and reason and never
reaches the topic; readers parse each expression once, when they first read it. Serving
processes call `get` per request: the topic is re-read in the background at most every few
seconds, and a name not yet seen is looked up synchronously before it is refused, at most
once a second: the API answers on its event loop, and one re-read (a consumer round trip,
about 130 ms) per request naming an unknown filter would let such requests stall it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from connector.exceptions import FilterError, FilterNotFoundError
from connector.filters import Filter
from connector.filters.grammar import parse
from connector.kafka_log import CompactedLog, settings_log
from connector.settings import CommonSettings
from connector.topic_view import GroupEntries

_REREAD_INTERVAL = 5.0
_UNSEEN_NAME_REREAD_SECONDS = 1.0  # least time between two re-reads for unknown names
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}")  # CreateFilter's name rule


@dataclass(frozen=True)
class NamedFilter:
    """A stored filter: its name, the parsed expression (with its text) and when it was made."""

    name: str
    filter: Filter
    created: float


class FilterStore(GroupEntries[NamedFilter]):
    """Create, list, delete and look up the filters of one dataset group."""

    def __init__(self, log: CompactedLog, group: str) -> None:
        super().__init__(log, group, _REREAD_INTERVAL)
        self._unseen_reread: float | None = None  # when a miss last re-read the topic

    def _read(self, name: str, value: bytes) -> NamedFilter:
        return _decode(name, value)

    def create(self, name: str, expression: str) -> NamedFilter:
        """Store `expression` as `name`; refused if malformed or if the name is taken."""
        if not _NAME.fullmatch(name):
            raise FilterError(
                f"filter name {name!r} must be 1-63 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        named = NamedFilter(name, parse(expression), time.time())
        with self._exclusive() as writer:
            if name in self._by_name:
                raise FilterError(
                    f"dataset group {self._group!r} already has a filter {name!r} (delete it first)"
                )
            value = {"expression": expression, "created": named.created}
            writer.append(self._key(name), json.dumps(value).encode())
        self._by_name[name] = named
        return named

    def delete(self, name: str) -> NamedFilter:
        """Delete the filter `name`; requests naming it are refused from then on."""
        with self._exclusive() as writer:
            if name not in self._by_name:
                raise self._not_found(name)
            writer.append(self._key(name), None)
        return self._by_name.pop(name)

    def list(self) -> list[NamedFilter]:
        """Every filter of the group, by name."""
        self.reread()
        return sorted(self._by_name.values(), key=lambda named: named.name)

    def get(self, name: str) -> Filter:
        """The parsed filter `name`, for hot paths: served from memory, the topic re-read
        in the background when stale, and synchronously for a name not yet seen unless a
        miss re-read it less than a second ago."""
        self.reread_if_stale()
        if name not in self._by_name and self._may_reread_for_unseen():
            self.reread()
        if name not in self._by_name:
            raise self._not_found(name)
        return self._by_name[name].filter

    def _may_reread_for_unseen(self) -> bool:
        now = time.monotonic()
        last = self._unseen_reread
        if last is not None and now - last < _UNSEEN_NAME_REREAD_SECONDS:
            return False
        self._unseen_reread = now
        return True

    def _not_found(self, name: str) -> FilterNotFoundError:
        return FilterNotFoundError(f"dataset group {self._group!r} has no filter {name!r}")


def _decode(name: str, value: bytes) -> NamedFilter:
    stored = json.loads(value)
    return NamedFilter(name, parse(stored["expression"]), float(stored["created"]))


def open_filters(settings: CommonSettings) -> FilterStore:
    """The filters of the settings' dataset group (the topic is created on first use)."""
    log = settings_log(settings, settings.filters_topic, "streamrec-filters")
    return FilterStore(log, settings.dataset_group)
