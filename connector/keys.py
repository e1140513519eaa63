"""The Redis key layout: the one module that knows how streamrec names its keys.

Every key starts with `streamrec:<group>:`. Ids are percent-encoded (anything but letters,
digits, '-', '.', '_' and '~'), so no id can contain ':', '{', '}', '*' or '?' and reach
outside its namespace, break a hash tag or act as a glob. The keys one subject's update
writes together share the hash tag `{u:<id>}` (user) or `{s:<id>}` (anonymous session), so
they live in one Redis Cluster slot. The layout is a public contract, see docs/redis-keys.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

PREFIX = "streamrec"


@lru_cache(maxsize=65_536)
def escape(identifier: str) -> str:
    """An id made safe for a key: percent-encoded, reversible with urllib.parse.unquote.
    Cached: the same users and items come back again and again on the ingest path."""
    return quote(identifier, safe="-._~")


@dataclass(frozen=True)
class Subject:
    """Whose history an event belongs to: a known user or an anonymous session."""

    kind: str  # "u" (user) or "s" (session)
    id: str

    @property
    def tag(self) -> str:
        """The hash tag shared by this subject's keys."""
        return f"{{{self.kind}:{escape(self.id)}}}"


@dataclass(frozen=True)
class Keys:
    """Key names of one dataset group."""

    group: str

    @property
    def base(self) -> str:
        """The namespace every key of the group starts with."""
        return f"{PREFIX}:{self.group}:"

    def history(self, subject: Subject) -> str:
        """Sorted set of the subject's recent events, scored by event time."""
        return f"{self.base}{subject.tag}:history"

    def seen(self, subject: Subject) -> str:
        """Sorted set of the subject's dedup markers (fingerprints and event ids)."""
        return f"{self.base}{subject.tag}:seen"

    def session_user(self, session_id: str) -> str:
        """The user id an anonymous session was stitched to."""
        return f"{self.base}{Subject('s', session_id).tag}:user"

    def item(self, item_id: str) -> str:
        """Hash of an item's metadata (Items dataset fields)."""
        return f"{self.base}item:{{i:{escape(item_id)}}}"

    def user(self, user_id: str) -> str:
        """Hash of a user's metadata (Users dataset fields)."""
        return f"{self.base}{Subject('u', user_id).tag}:meta"

    def served(self, recommendation_id: str) -> str:
        """The item ids served under a recommendationId (for implicit impressions)."""
        return f"{self.base}served:{escape(recommendation_id)}"

    @property
    def event_types(self) -> str:
        """Set of the distinct event types seen (bounded by the 10-field quota)."""
        return f"{self.base}event_types"

    @property
    def sources(self) -> str:
        """Set of the distinct attribution sources seen (at most 100)."""
        return f"{self.base}attribution_sources"

    def type_counts(self, bucket: int) -> str:
        """Hash of event counts per event type in the time bucket starting at `bucket`."""
        return f"{self.base}metrics:types:{bucket}"

    def source_counts(self, bucket: int) -> str:
        """Hash of event counts per attribution source in the time bucket `bucket`."""
        return f"{self.base}metrics:sources:{bucket}"

    @property
    def metric_buckets(self) -> str:
        """Sorted set of the time buckets that have counts, scored by bucket start."""
        return f"{self.base}metrics:buckets"
