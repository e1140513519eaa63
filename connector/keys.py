"""The Redis key layout: the one module that knows how streamrec names its keys.

Every key starts with `streamrec:<group>:`. Ids are percent-encoded (anything but letters,
digits, '-', '.', '_' and '~'), so no id can contain ':', '{', '}', '*' or '?' and reach
outside its namespace, break a hash tag or act as a glob. The keys one subject's update
writes together share the hash tag `{u:<id>}` (user) or `{s:<id>}` (anonymous session), so
they live in one Redis Cluster slot. The layout is a public contract, see docs/redis-keys.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import quote, unquote

PREFIX = "streamrec"


@lru_cache(maxsize=65_536)
def escape(identifier: str) -> str:
    """An id made safe for a key: percent-encoded, reversible with urllib.parse.unquote.
    Cached: the same users and items come back again and again on the ingest path."""
    return escape_once(identifier)


def escape_once(identifier: str) -> str:
    """`escape` without the cache, for ids that do not repeat (a recommendationId is new
    on every request: cached, each one stayed until 65,536 others pushed it out, and they
    evicted the users and items the cache is for)."""
    return quote(identifier, safe="-._~")


@dataclass(frozen=True)
class Subject:
    """Whose history an event belongs to: a known user or an anonymous session."""

    kind: str  # "u" (user) or "s" (session)
    id: str

    @cached_property
    def tag(self) -> str:
        """The hash tag shared by this subject's keys (computed once: the ingest path asks
        for an event's tag several times per batch)."""
        return f"{{{self.kind}:{escape(self.id)}}}"

    @classmethod
    def from_tag(cls, tag: str) -> Subject:
        """The subject of a hash tag made by `tag` ("{u:alice}" -> Subject("u", "alice"))."""
        kind, _, escaped = tag.strip("{}").partition(":")
        return cls(kind, unquote(escaped))


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

    def interacted(self, subject: Subject) -> str:
        """Sorted set of the (item, event type) pairs the subject interacted with, scored by
        the latest such event's time: seen-item exclusion and `Interactions` filters."""
        return f"{self.base}{subject.tag}:interacted"

    def session_user(self, session_id: str) -> str:
        """The user id an anonymous session was stitched to."""
        return f"{self.base}{Subject('s', session_id).tag}:user"

    def item(self, item_id: str) -> str:
        """Hash of an item's metadata (Items dataset fields)."""
        return f"{self.base}item:{{i:{escape(item_id)}}}"

    def user(self, user_id: str) -> str:
        """Hash of a user's metadata (Users dataset fields)."""
        return f"{self.base}{Subject('u', user_id).tag}:meta"

    def recommendations(self, subject: Subject) -> str:
        """The subject's precomputed list (JSON), refreshed as its events arrive."""
        return f"{self.base}{subject.tag}:recs"

    @property
    def active_subjects(self) -> str:
        """Sorted set of subject tags scored by their last list refresh (ms): who to refresh
        first when a new model version arrives."""
        return f"{self.base}active"

    def served_by(self, subject: Subject) -> str:
        """List of the recommendationIds last served to the subject, newest first: the
        lists beyond STREAMREC_API_SERVED_PER_SUBJECT are deleted."""
        return f"{self.base}{subject.tag}:served"

    def served(self, recommendation_id: str) -> str:
        """The item ids served under a recommendationId (for implicit impressions)."""
        return f"{self.base}served:{escape_once(recommendation_id)}"

    @property
    def event_types(self) -> str:
        """Set of the distinct event types seen (bounded by the 10-field quota)."""
        return f"{self.base}event_types"

    @property
    def sources(self) -> str:
        """Set of the distinct attribution sources seen (at most 100)."""
        return f"{self.base}attribution_sources"

    # The counters share one hash tag, so on a Redis Cluster a batch's counts, the bucket index
    # and the journal of counts not yet written (`pending_counts`) change together in one
    # script. Layout version 2 moved them there from `metrics:types:<bucket>` and the like
    # (connector/stores/counters.py migrates).

    @property
    def metrics_base(self) -> str:
        """The start of every counter key: `streamrec:<g>:metrics:{m:<g>}:`."""
        return f"{self.base}metrics:{{m:{escape(self.group)}}}:"

    def type_counts(self, bucket: int) -> str:
        """Hash of event counts per event type in the time bucket starting at `bucket`."""
        return f"{self.metrics_base}types:{bucket}"

    def source_counts(self, bucket: int) -> str:
        """Hash of event counts per attribution source in the time bucket `bucket`."""
        return f"{self.metrics_base}sources:{bucket}"

    @property
    def metric_buckets(self) -> str:
        """Sorted set of the time buckets that have counts, scored by bucket start."""
        return f"{self.metrics_base}buckets"

    @property
    def pending_counts(self) -> str:
        """Hash of the batches whose counts are kept on their subjects' nodes and not yet
        added to the counters (Redis Cluster only): token -> JSON {created, anchors, counted}."""
        return f"{self.metrics_base}pending"

    def pending_part(self, subject: Subject) -> str:
        """Hash of one batch part's counts (token -> JSON) kept on the subject's node until
        they are added to the counters (Redis Cluster only)."""
        return f"{self.base}{subject.tag}:pending"

    def legacy_metrics(self) -> tuple[str, str, str]:
        """Layout version 1's counter keys: the prefix of type counts, of source counts, and
        the bucket index, for the migration to version 2."""
        return (
            f"{self.base}metrics:types:",
            f"{self.base}metrics:sources:",
            f"{self.base}metrics:buckets",
        )

    # Model versions. A version's keys deliberately share no hash tag: each chunk is its own
    # key, so a model of millions of items spreads over a Redis Cluster's slots instead of
    # filling one node. Nothing needs two of them atomically: completeness lives in the one
    # manifest key and the current version in the one pointer key.

    @property
    def model_current(self) -> str:
        """String holding the id of the version readers load; only ever a complete version."""
        return f"{self.base}model:current"

    @property
    def model_versions(self) -> str:
        """Sorted set of version ids scored by creation time (Unix seconds)."""
        return f"{self.base}model:versions"

    @property
    def model_channel(self) -> str:
        """Pub/sub channel on which the id of each newly current version is announced."""
        return f"{self.base}model:announce"

    def model_version(self, version: str) -> str:
        """The prefix of every key of one version (for documentation and scans)."""
        return f"{self.base}model:v:{escape(version)}:"

    def model_manifest(self, version: str) -> str:
        """JSON manifest of a version: arrays, dtypes, shapes, chunking, `complete`."""
        return f"{self.model_version(version)}manifest"

    def model_meta(self, version: str) -> str:
        """JSON of the version's meta (hyperparameters, data range, metrics)."""
        return f"{self.model_version(version)}meta"

    def model_ids(self, version: str, index: int) -> str:
        """JSON list of the item ids of row chunk `index`, in embedding-row order."""
        return f"{self.model_version(version)}ids:{index}"

    def model_chunk(self, version: str, array: str, index: int) -> str:
        """Raw little-endian bytes of row chunk `index` of an array (chunk 0: a whole array)."""
        return f"{self.model_version(version)}array:{escape(array)}:{index}"
