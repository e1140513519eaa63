"""Model versions in Redis: published whole, switched atomically, loaded consistently, pruned.

Why this shape: serving replicas load the current version while the worker publishes the
next one, so no reader may ever see half a model. A version is immutable and lives under keys
of its own (row chunks of every `item_*` array and of the item ids, other arrays whole, `meta`
and a manifest). Only when every chunk is written is the manifest marked complete, and only
then does the one-key pointer move to it (a single SET) and the id go out on a pub/sub
channel. A reader follows the pointer, checks the manifest and, if the version vanishes under
it (pruned, or rolled away from and pruned), starts again from the pointer.

Ready for Redis Cluster: every command touches one key, chunks are independent keys without a
shared hash tag (a big model spreads over the slots), and the compare-and-set that guards a
manifest is a one-key Lua script. Key names come from connector.keys; the layout is the public
contract of docs/redis-keys.md.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, cast

import numpy as np
import orjson
import redis
import redis.client

from connector.exceptions import ConcurrentWriteError, ConfigurationError, ModelNotFoundError
from connector.keys import Keys
from connector.model.artifacts import ITEM_PREFIX, ModelArtifacts
from connector.redis_client import RedisClient

__all__ = [
    "ArrayLayout",
    "Manifest",
    "ModelStore",
    "VersionInfo",
    "new_version_id",
    "plan",
]

from connector.stores.model_layout import (
    BATCH_BYTES,
    CHUNK_BYTES,
    LOAD_ATTEMPTS,
    STALE_AFTER_SECONDS,
    ArrayLayout,
    Manifest,
    VersionInfo,
    _array_parts,
    _Assembly,
    _encode_meta,
    _id_parts,
    new_version_id,
    plan,
)

_CAS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class _Batches:
    """Writes (or unlinks) keys through pipelines of about `limit` bytes each.

    One pipeline per chunk would cost a round trip per chunk; one pipeline for a whole model
    of millions of items would hold it all in client memory twice. Non-transactional on
    purpose: the commands touch keys in many cluster slots, and atomicity comes from the
    manifest and the pointer, not from here.
    """

    def __init__(self, client: RedisClient, limit: int) -> None:
        self._client, self._limit = client, limit
        self._pipe = client.pipeline(transaction=False)
        self._pending = 0

    def set(self, key: str, value: bytes) -> None:
        """Queue a SET; send the batch when it is full."""
        self._pipe.set(key, value)
        self._count(len(value) + len(key))

    def unlink(self, key: str) -> None:
        """Queue an UNLINK (freed in the background); send the batch when it is full."""
        self._pipe.unlink(key)
        self._count(64 + len(key))

    def _count(self, size: int) -> None:
        self._pending += size
        if self._pending >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Send what is queued."""
        self._pipe.execute()
        self._pending = 0

    def __enter__(self) -> _Batches:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.flush()
        self._pipe.reset()


class ModelStore:
    """Publishes, lists, loads, rolls back and prunes the model versions of one dataset group.

    The client must return bytes (no `decode_responses`): chunks are raw array bytes.
    """

    def __init__(
        self,
        client: RedisClient,
        keys: Keys,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        batch_bytes: int = BATCH_BYTES,
        stale_after: float = STALE_AFTER_SECONDS,
    ) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ConfigurationError("the model store needs a Redis client that returns bytes")
        self._client, self._keys = client, keys
        self._chunk_bytes, self._batch_bytes = chunk_bytes, batch_bytes
        self._stale_after = stale_after
        self._read_batch = max(1, batch_bytes // chunk_bytes)
        self._cas = client.register_script(_CAS)

    @property
    def group(self) -> str:
        """The dataset group whose versions this store holds."""
        return self._keys.group

    @property
    def channel(self) -> str:
        """The pub/sub channel that carries the id of each newly current version."""
        return self._keys.model_channel

    def subscribe(self) -> redis.client.PubSub:
        """A subscription to version announcements; each message's data is a version id."""
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.channel)
        return pubsub

    # Publishing

    def publish(self, artifacts: ModelArtifacts, keep: int) -> str:
        """Write a new version, make it current, announce it, prune to `keep`; its id.

        The pointer moves only after the manifest says complete, so readers never see a part
        of it. A publish that fails (or is interrupted) removes what it wrote when it can;
        when it cannot (a crash), the next successful publish does after `stale_after`.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1: the current version is always kept")
        now = datetime.now(UTC)
        manifest = plan(new_version_id(now), artifacts, now.timestamp(), self._chunk_bytes)
        meta = _encode_meta(artifacts.meta)
        try:
            self._write(manifest, artifacts, meta)
        except BaseException:
            self._discard(manifest.version)
            raise
        self._client.set(self._keys.model_current, manifest.version)
        self._client.publish(self.channel, manifest.version)
        self.prune(keep)
        return manifest.version

    def _write(self, manifest: Manifest, artifacts: ModelArtifacts, meta: bytes) -> None:
        """Every key of the version, the manifest first (so a crash is found) and complete last."""
        version, pending = manifest.version, manifest.to_json()
        self._client.zadd(self._keys.model_versions, {version: manifest.created})
        self._client.set(self._keys.model_manifest(version), pending)
        with _Batches(self._client, self._batch_bytes) as out:
            out.set(self._keys.model_meta(version), meta)
            for index, part in enumerate(_id_parts(artifacts.items, manifest.id_chunk_rows)):
                out.set(self._keys.model_ids(version, index), part)
            for name, layout in manifest.arrays.items():
                for index, part in enumerate(_array_parts(artifacts.arrays[name], layout)):
                    out.set(self._keys.model_chunk(version, name, index), part)
        done = replace(manifest, complete=True).to_json()
        if not self._swap(self._keys.model_manifest(version), pending, done):
            raise ConcurrentWriteError(
                f"model version {version} was removed while it was being written (another "
                f"worker took it for a crashed publish after {self._stale_after:.0f}s); "
                "publish again"
            )

    def _swap(self, key: str, expected: bytes, new: bytes) -> bool:
        """Set `key` to `new` only if it still holds `expected` (atomic, one key)."""
        return int(self._cas(keys=[key], args=[expected, new])) == 1

    def _discard(self, version: str) -> None:
        """Best effort removal of a failed publish's keys; prune finishes what this cannot."""
        with contextlib.suppress(redis.RedisError):
            raw = self._get(self._keys.model_manifest(version))
            if raw is not None and not Manifest.from_json(raw).complete:
                self._delete(raw)

    # Reading

    def current_version(self) -> str | None:
        """The id of the version readers load, or None before the first publish."""
        raw = self._get(self._keys.model_current)
        return None if raw is None else raw.decode()

    def manifest(self, version: str) -> Manifest:
        """The manifest of a version, complete or not; ModelNotFoundError if unknown."""
        raw = self._get(self._keys.model_manifest(version))
        if raw is None:
            raise ModelNotFoundError(f"no model version {version!r} in {self._where()}")
        return Manifest.from_json(raw)

    def meta(self, version: str) -> dict[str, Any]:
        """The meta a version was published with; ModelNotFoundError if absent."""
        raw = self._get(self._keys.model_meta(version))
        if raw is None:
            raise ModelNotFoundError(f"no meta for model version {version!r} in {self._where()}")
        meta: dict[str, Any] = orjson.loads(raw)
        return meta

    def versions(self) -> list[VersionInfo]:
        """Every version in Redis, newest first, complete or not (a publish in progress)."""
        found = cast(list[bytes], self._client.zrevrange(self._keys.model_versions, 0, -1))
        ids = [raw.decode() for raw in found]
        raws = self._get_many([self._keys.model_manifest(version) for version in ids])
        current = self.current_version()
        return [_info(Manifest.from_json(raw), current) for raw in raws if raw is not None]

    def load(self, version: str | None = None) -> ModelArtifacts:
        """A complete version, the current one by default, exactly as it was published.

        If the current version disappears while it is read (pruned after newer publishes, or
        a rollback), the load starts again from the pointer; it gives up only when the pointer
        names the same unreadable version twice, or after LOAD_ATTEMPTS moves.
        """
        if version is not None:
            return self._load(version)
        failed: str | None = None
        for _ in range(LOAD_ATTEMPTS):
            current = self.current_version()
            if current is None:
                raise ModelNotFoundError(f"no model version is published in {self._where()}")
            if current == failed:
                break
            try:
                return self._load(current)
            except ModelNotFoundError:
                failed = current
        raise ModelNotFoundError(f"the current model version {failed!r} cannot be read")

    def _load(self, version: str) -> ModelArtifacts:
        """One version, read chunk by chunk; ModelNotFoundError if incomplete or vanishing."""
        manifest = self.manifest(version)
        if not manifest.complete:
            raise ModelNotFoundError(f"model version {version!r} is not complete")
        meta = self.meta(version)
        items = self._item_ids(manifest)
        arrays = {
            name: self._load_array(version, name, layout)
            for name, layout in manifest.arrays.items()
        }
        return ModelArtifacts(items, arrays, meta)

    def item_values(self, version: str, name: str) -> dict[str, Any]:
        """One per-item array of a version by item id, without loading the rest (the
        worker keeps item ages across versions); an empty dict when it has no such array."""
        manifest = self.manifest(version)
        layout = manifest.arrays.get(name)
        if not manifest.complete or layout is None:
            return {}
        items = self._item_ids(manifest)
        values = self._load_array(version, name, layout).tolist()
        return dict(zip(items, values, strict=True))

    def _item_ids(self, manifest: Manifest) -> list[str]:
        """A version's item ids in row order, decoded a batch of chunks at a time."""
        version = manifest.version
        keys = [self._keys.model_ids(version, i) for i in range(manifest.id_chunks)]
        return [
            item
            for values in self._read_batches(keys, version)
            for part in values
            for item in orjson.loads(part)
        ]

    def _load_array(self, version: str, name: str, layout: ArrayLayout) -> np.ndarray:
        """One array, each batch of chunks copied in as it arrives; an item array comes
        after a zero row the model takes as its padding (artifacts.padded_buffer)."""
        keys = [self._keys.model_chunk(version, name, i) for i in range(layout.chunks)]
        where = f"array {name!r} of model version {version!r}"
        assembly = _Assembly(layout, where, padded=name.startswith(ITEM_PREFIX))
        for values in self._read_batches(keys, version):
            for value in values:
                assembly.add(value)
        return assembly.finish()

    def _read_batches(self, keys: list[str], version: str) -> Iterator[list[bytes]]:
        """The keys' values, a pipeline per batch; a missing one means the version is gone."""
        for values in self._batches_of(keys):
            if any(value is None for value in values):
                raise ModelNotFoundError(f"model version {version!r} was deleted while being read")
            yield [value for value in values if value is not None]

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        return [value for values in self._batches_of(keys) for value in values]

    def _batches_of(self, keys: list[str]) -> Iterator[list[bytes | None]]:
        for start in range(0, len(keys), self._read_batch):
            pipe = self._client.pipeline(transaction=False)
            for key in keys[start : start + self._read_batch]:
                pipe.get(key)
            yield pipe.execute()

    def _get(self, key: str) -> bytes | None:
        return cast(bytes | None, self._client.get(key))

    # Rollback and pruning

    def rollback(self, version: str) -> None:
        """Make an older complete version current again, and announce it."""
        if not self.manifest(version).complete:
            raise ModelNotFoundError(f"model version {version!r} is not complete")
        self._client.set(self._keys.model_current, version)
        self._client.publish(self.channel, version)

    def prune(self, keep: int) -> list[str]:
        """Delete versions beyond the newest `keep` complete ones and crashed publishes.

        Never deleted: the current version (even if older, after a rollback) and incomplete
        versions younger than `stale_after` (another worker may be writing them). Deleted: the
        other complete versions, versions already being deleted, and incomplete versions
        older than `stale_after`. Returns the ids deleted.
        """
        if keep < 1:
            raise ValueError("keep must be at least 1: the current version is always kept")
        current = self.current_version()
        found = cast(
            list[tuple[bytes, float]],
            self._client.zrange(self._keys.model_versions, 0, -1, withscores=True),
        )
        entries = [(raw.decode(), float(score)) for raw, score in found]
        raws = self._get_many([self._keys.model_manifest(version) for version, _ in entries])
        complete = [v for (v, _), raw in zip(entries, raws, strict=True) if _is_complete(raw)]
        kept = set(complete[-keep:]) | {current}
        return [
            version
            for (version, created), raw in zip(entries, raws, strict=True)
            if version not in kept and self._prune_one(version, created, raw)
        ]

    def _prune_one(self, version: str, created: float, raw: bytes | None) -> bool:
        """Delete one version not kept, unless it may be a publish in progress."""
        stale = time.time() - created > self._stale_after
        if raw is None:  # a publish that crashed between ZADD and writing its manifest
            if stale:
                self._client.zrem(self._keys.model_versions, version)
            return stale
        manifest = Manifest.from_json(raw)
        if manifest.complete or manifest.deleting or stale:
            return self._delete(raw)
        return False

    def _delete(self, raw: bytes) -> bool:
        """Delete the version whose manifest is `raw`, if nobody changed the manifest since.

        The manifest first turns into a tombstone (atomically, against a publisher marking it
        complete), so readers stop trusting it; it goes last, so a crash halfway leaves a
        tombstone that the next prune finishes.
        """
        manifest = Manifest.from_json(raw)
        version, key = manifest.version, self._keys.model_manifest(manifest.version)
        tombstone = replace(manifest, complete=False, deleting=True).to_json()
        if not self._swap(key, raw, tombstone):
            return False
        with _Batches(self._client, self._batch_bytes) as out:
            for chunk_key in self._chunk_keys(manifest):
                out.unlink(chunk_key)
        self._client.unlink(key)
        self._client.zrem(self._keys.model_versions, version)
        return True

    def _chunk_keys(self, manifest: Manifest) -> Iterator[str]:
        """Every key of a version but its manifest."""
        version = manifest.version
        yield self._keys.model_meta(version)
        for index in range(manifest.id_chunks):
            yield self._keys.model_ids(version, index)
        for name, layout in manifest.arrays.items():
            for index in range(layout.chunks):
                yield self._keys.model_chunk(version, name, index)

    def _where(self) -> str:
        return f"dataset group {self.group!r}"


def _is_complete(raw: bytes | None) -> bool:
    return raw is not None and Manifest.from_json(raw).complete


def _info(manifest: Manifest, current: str | None) -> VersionInfo:
    created = datetime.fromtimestamp(manifest.created, UTC)
    return VersionInfo(
        manifest.version,
        created,
        manifest.complete,
        manifest.items,
        manifest.version == current,
        manifest.metrics,
    )
