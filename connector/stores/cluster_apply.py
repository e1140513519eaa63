"""A batch's Redis effects on a Redis Cluster: split by node, applied per node in parallel.

On one server a batch is one script (connector/stores/apply_batch.lua). A cluster node can
only run a script over the keys it holds, so here the batch is split by the node of each
subject's hash tag and each node runs the same script over its subjects' events, all nodes at
once. Each part is idempotent (keyed by the events' markers), so a crash between parts is
repaired by the replay, as on one server.

What is not keyed by subject moves to steps of its own:
- **Counts.** Each part keeps its counts under one of its subjects (`Keys.pending_part`) and
  returns them; the connector adds them to the counters with `count_batch.lua`, which runs
  in the counters' own slot and records in the batch's journal entry
  (`Keys.pending_counts`) which parts it added, so each part is added once, whoever sends
  it. A batch whose connector died before that is found in the journal by `recover` (at
  start, then every minute), which adds what its parts kept; entries five minutes old are
  then removed. docs/deploy.md, Redis.
- **Attribution sources** are admitted into their set before counting.
- **Stitches.** The session's history, markers and interacted items are read from its node
  and merged into the user's on the user's node, then the link is set (`SET NX`): a crash
  before the link merges again on the replay, which changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis.cluster import ClusterNode, RedisCluster

from connector.exceptions import TransientError
from connector.keys import Keys, Subject
from connector.records import Stitch
from connector.stores.script_args import EventOp, packed_ops, packed_probes

_log = logging.getLogger(__name__)

SOURCE_LIMIT = "SOURCE_LIMIT_EXCEEDED"
PART_TTL_SECONDS = 7 * 24 * 3600  # a part's kept counts outlive any recovery delay
RECOVER_EVERY_SECONDS = 60.0
STALE_AFTER_SECONDS = 300.0  # a journal entry this old belongs to no batch still running

Counts = dict[str, dict[str, dict[str, int]]]  # "types"/"sources" -> bucket -> name -> count


@dataclass(frozen=True)
class PartResult:
    """What one node's part of a batch did."""

    admitted: int
    duplicates: int
    flags: str
    counts: Counts


class NodeScript:
    """A Lua script run on one chosen node of the cluster (loaded there on first use)."""

    def __init__(self, client: RedisCluster, text: str) -> None:
        self._client, self._text = client, text
        self._sha = client.register_script(text).sha

    def run(self, node: ClusterNode, *args: Any) -> Any:
        """The script's reply on `node`, with no KEYS and `args` as ARGV."""
        try:
            return self._call(node, args)
        except redis.exceptions.NoScriptError:
            self._client.execute_command(  # type: ignore[no-untyped-call]
                "SCRIPT LOAD", self._text, target_nodes=node
            )
            return self._call(node, args)

    def _call(self, node: ClusterNode, args: tuple[Any, ...]) -> Any:
        try:
            command = ("EVALSHA", self._sha, 0, *args)
            return self._client.execute_command(*command, target_nodes=node)  # type: ignore[no-untyped-call]
        except redis.ResponseError as exc:
            if "non local key" not in str(exc):
                raise
            # A slot moved since the split (resharding, failover): learn the new owners and
            # let the batch be retried; every part already applied is skipped by its markers.
            self._client.nodes_manager.initialize()
            raise TransientError(f"a Redis Cluster slot moved during a batch: {exc}") from exc


class ClusterApply:
    """The ingest path's per-batch Redis work, split by cluster node."""

    def __init__(
        self,
        client: RedisCluster,
        keys: Keys,
        scripts: dict[str, str],
        counter_settings: dict[str, Any],
        admit: Callable[[str, list[str], int], set[str]],
    ) -> None:
        self._client, self._keys = client, keys
        self._apply = NodeScript(client, scripts["apply"])
        self._known = NodeScript(client, scripts["known"])
        self._count = client.register_script(scripts["count"])
        self._counter_settings = orjson.dumps(counter_settings)
        self._admit = admit
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="redis-node")
        self._recovered_at = 0.0

    def known(self, layout: bytes, probes: list[tuple[str, tuple[str, ...]]]) -> str:
        """One '1'/'0' flag per probe (subject tag, markers), from each node's dedup sets;
        `layout` is known_markers.lua's first argument."""
        parts = self._split([tag for tag, _ in probes])

        def run(node: ClusterNode, indexes: list[int]) -> str:
            packed = packed_probes(probes[i] for i in indexes)
            return _text(self._known.run(node, layout, packed))

        flags = ["0"] * len(probes)
        for (_, indexes), part in zip(parts.items(), self._each(parts, run), strict=True):
            for index, flag in zip(indexes, part, strict=True):
                flags[index] = flag
        return "".join(flags)

    def apply(
        self,
        base: dict[str, Any],
        ops: list[EventOp],
        stitches: Sequence[Stitch],
        max_sources: int,
    ) -> tuple[int, int, int, str]:
        """Record the batch's event ops (as apply_batch.lua takes them) node by node, then its
        stitches, then its counts; (admitted, duplicates, stitched, flags)."""
        self.recover_if_due(max_sources)
        admitted = duplicates = 0
        flags = ["0"] * len(ops)
        if ops:
            token = uuid.uuid4().hex
            parts = self._split([op[0] for op in ops])
            anchors = {node: self._anchor(ops[indexes[0]][0]) for node, indexes in parts.items()}
            self._open(token, list(anchors.values()))

            def run(node: ClusterNode, indexes: list[int]) -> PartResult:
                pending = {"anchor": anchors[node], "token": token, "ttl": PART_TTL_SECONDS}
                header = orjson.dumps({**base, "pending": pending})
                return _part(self._apply.run(node, header, packed_ops(ops[i] for i in indexes)))

            kept: list[tuple[str, Counts]] = []
            results = self._each(parts, run)
            for (node, indexes), result in zip(parts.items(), results, strict=True):
                admitted += result.admitted
                duplicates += result.duplicates
                for index, flag in zip(indexes, result.flags, strict=True):
                    flags[index] = flag
                if result.admitted:
                    kept.append((anchors[node], result.counts))
            if kept:  # a batch of duplicates only has nothing to count
                self._add_counts(token, kept, max_sources)
            self._close(token, list(anchors.values()))
        stitched = sum(self._stitch(base, stitch) for stitch in stitches)
        return admitted, duplicates, stitched, "".join(flags)

    def recover_if_due(self, max_sources: int) -> None:
        """`recover` once a minute at most."""
        if time.monotonic() - self._recovered_at >= RECOVER_EVERY_SECONDS:
            self.recover(max_sources)
            self._recovered_at = time.monotonic()

    def recover(self, max_sources: int, older_than: float = STALE_AFTER_SECONDS) -> int:
        """Add the counts the parts of unfinished batches kept (a batch whose connector died
        between its parts and its counting); safe beside a live batch, since each part is
        counted once. Entries older than `older_than` seconds, which no running batch can
        still own, are then removed. How many parts it counted."""
        entries: dict[bytes, bytes] = self._client.hgetall(self._keys.pending_counts)  # type: ignore[assignment]
        found = 0
        for token_bytes, raw in entries.items():
            token, entry = _text(token_bytes), orjson.loads(raw)
            counted = set(entry["counted"])
            waiting = [anchor for anchor in entry["anchors"] if anchor not in counted]
            pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
            for anchor in waiting:
                pipe.hget(anchor, token)
            kept = [(a, orjson.loads(c)) for a, c in zip(waiting, pipe.execute(), strict=True) if c]
            if kept:
                found += self._add_counts(token, kept, max_sources)
                self._forget_parts(token, [anchor for anchor, _ in kept])  # counted now
            if entry["created"] < time.time() - older_than:
                self._close(token, list(entry["anchors"]))
        if found:
            _log.info("counts of interrupted batches added", extra={"parts": found})
        return found

    # Steps

    def _open(self, token: str, anchors: list[str]) -> None:
        entry = {"created": time.time(), "anchors": anchors, "counted": []}
        self._client.hset(self._keys.pending_counts, token, orjson.dumps(entry))

    def _add_counts(self, token: str, kept: list[tuple[str, Counts]], max_sources: int) -> int:
        """Admit the batch's attribution sources, then add each part's counts once; how
        many parts were added now."""
        names = sorted(
            {name for _, counts in kept for by in counts["sources"].values() for name in by}
        )
        admitted = self._admit(self._keys.sources, names, max_sources) if names else set()
        parts = [(anchor, _admitted_sources(counts, admitted)) for anchor, counts in kept]
        added = self._count(
            keys=[self._keys.pending_counts],
            args=[token, orjson.dumps(parts), self._counter_settings],
        )
        return int(added)

    def _close(self, token: str, anchors: list[str]) -> None:
        self._forget_parts(token, anchors)
        self._client.hdel(self._keys.pending_counts, token)

    def _forget_parts(self, token: str, anchors: list[str]) -> None:
        """Drop the counts the parts kept (once counted: the journal entry knows they are)."""
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for anchor in anchors:
            pipe.hdel(anchor, token)
        pipe.execute()

    def _stitch(self, base: dict[str, Any], stitch: Stitch) -> int:
        """Merge the session into the user, then link it; 1 if this call linked it."""
        link = self._keys.session_user(stitch.session_id)
        if self._client.exists(link):
            return 0
        session = Subject("s", stitch.session_id)
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for key in (
            self._keys.history(session),
            self._keys.seen(session),
            self._keys.interacted(session),
        ):
            pipe.zrange(key, 0, -1, withscores=True)
        history, seen, interacted = pipe.execute()
        user_tag = Subject("u", stitch.user_id).tag
        merge = {
            "user_tag": user_tag,
            "history": _flat(history),
            "seen": _flat(seen),
            "interacted": _flat(interacted),
        }
        node = self._node(user_tag)
        self._apply.run(node, orjson.dumps({**base, "merges": [merge]}))
        linked = self._client.set(link, stitch.user_id, nx=True, ex=base["history_ttl"])
        return 1 if linked else 0

    # Plumbing

    def _anchor(self, tag: str) -> str:
        return self._keys.pending_part(Subject.from_tag(tag))

    def _node(self, tag: str) -> ClusterNode:
        node: ClusterNode = self._client.get_node_from_key(tag)  # type: ignore[no-untyped-call]
        return node

    def _split(self, tags: list[str]) -> dict[ClusterNode, list[int]]:
        """The indexes of `tags` by the node that holds each tag's slot."""
        parts: dict[ClusterNode, list[int]] = defaultdict(list)
        nodes: dict[str, ClusterNode] = {}
        for index, tag in enumerate(tags):
            node = nodes.get(tag)
            if node is None:
                node = nodes[tag] = self._node(tag)
            parts[node].append(index)
        return dict(parts)

    def _each(
        self,
        parts: dict[ClusterNode, list[int]],
        run: Callable[[ClusterNode, list[int]], Any],
    ) -> list[Any]:
        """`run` for every node's part, all at once; results in the order of `parts`."""
        if len(parts) == 1:
            ((node, indexes),) = parts.items()
            return [run(node, indexes)]
        futures = [self._pool.submit(run, node, indexes) for node, indexes in parts.items()]
        return [future.result() for future in futures]


def _part(reply: list[Any]) -> PartResult:
    admitted, duplicates, _, flags, counts = reply
    return PartResult(int(admitted), int(duplicates), _text(flags), orjson.loads(counts))


def _admitted_sources(counts: Counts, admitted: set[str]) -> Counts:
    """The counts with every attribution source outside the admitted set counted as
    SOURCE_LIMIT_EXCEEDED, as the single-server script does."""
    sources: dict[str, dict[str, int]] = {}
    for bucket, by_name in (counts.get("sources") or {}).items():
        into = sources.setdefault(bucket, {})
        for name, count in by_name.items():
            kept = name if name in admitted else SOURCE_LIMIT
            into[kept] = into.get(kept, 0) + int(count)
    return {"types": counts.get("types") or {}, "sources": sources}


def _flat(pairs: list[tuple[bytes, float]]) -> list[Any]:
    """ZRANGE ... WITHSCORES pairs as the script's flat [score, member, ...] list."""
    return [part for member, score in pairs for part in (score, _text(member))]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
