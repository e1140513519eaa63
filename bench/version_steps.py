"""Where the connector's resident memory goes at each new model version: a real `streamrec
connector` with precomputed lists, a steady stream of events, and several versions published
in turn, sampled right before each version, right after the swap and after the refresh of
every active list that the version starts.

    python bench/version_steps.py [--versions 6] [--rate 500] [--users 10000]
                                  [--items 1000 --grow 600] [--warm-up 60] [--settle 20]
                                  [--label main] [--env NAME=VALUE ...]

Versions are bench/serve.py's random_version of --items items, --grow more each time (the
soak's catalogue grew from about 1,000 to 3,800 items). Events are bench/soak.py's traffic
(one per PutEvents record, keyed by user) at --rate per second from a thread of this
process. The connector gets bench/diag/ first on its PYTHONPATH (sitecustomize.py there
reports its threads and finished refreshes and writes glibc's malloc_info on request) and
the --env settings (e.g. MALLOC_ARENA_MAX=2) on top of this process's environment, so two
runs with different PYTHONPATHs or --env compare code or allocator settings side by side.
The connector refreshes lists in its own process (STREAMREC_LISTS_REFRESH_PROCESSES=0), the
refresh whose memory this samples; by default the connector refreshes them in a child
process, which this does not sample.
Each sample records VmRSS and, from /proc/<pid>/smaps, the resident size of the main heap
([heap]), of anonymous memory in ranges flagged for transparent huge pages and not, of
files, and how much is in huge pages; from malloc_info, per arena, what the allocator holds
from the system and how much of it is free. Every sample's smaps and malloc_info are kept in
the run folder.

Starts a local Kafka broker and redis-server unless STREAMREC_KAFKA_BOOTSTRAP and
STREAMREC_REDIS_URL are set. Prints a table; the last line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import connector_env, counted, prepare
from bench.proc_stats import cpu_seconds
from bench.serve import random_version
from bench.services import services
from bench.soak import Publisher
from bench.soak_events import Traffic
from bench.soak_procs import Child, start, wait_until
from connector import logs
from connector.keys import Keys
from connector.settings import ConnectorSettings
from connector.stores.model_versions import ModelStore


def smaps(pid: int) -> dict[str, float]:
    """Resident MiB of /proc/<pid>/smaps: the main heap, anonymous memory in mappings
    flagged for transparent huge pages (VmFlags hg: numpy madvises arrays of 4 MiB or more,
    and the flag stays on the range after the array is freed) and not, files; and how much
    of it is in huge pages (AnonHugePages)."""
    kinds = {"heap": 0, "anon_hg": 0, "anon": 0, "file": 0, "huge_pages": 0}
    maps: list[dict[str, Any]] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            path = head[5] if len(head) > 5 else ""
            kind = "heap" if path == "[heap]" else "file" if path.startswith("/") else "anon"
            maps.append({"kind": kind, "rss": 0, "huge": 0})
        elif head and head[0] == "Rss:":
            maps[-1]["rss"] = int(head[1])
        elif head and head[0] == "AnonHugePages:":
            maps[-1]["huge"] = int(head[1])
        elif head and head[0] == "VmFlags:" and "hg" in head[1:] and maps[-1]["kind"] == "anon":
            maps[-1]["kind"] = "anon_hg"
    for mapping in maps:
        kinds[mapping["kind"]] += mapping["rss"]
        kinds["huge_pages"] += mapping["huge"]
    return {kind: round(kib / 1024, 1) for kind, kib in kinds.items()}


def malloc_arenas(xml: str) -> list[dict[str, float]]:
    """Per arena in a malloc_info document: MiB held from the system and MiB free in it."""
    arenas = []
    for heap in re.findall(r'<heap nr="\d+">(.*?)</heap>', xml, re.S):
        current = re.search(r'<system type="current" size="(\d+)"/>', heap)
        rest = re.search(r'<total type="rest" count="\d+" size="(\d+)"/>', heap)
        fast = re.search(r'<total type="fast" count="\d+" size="(\d+)"/>', heap)
        free = int(rest.group(1) if rest else 0) + int(fast.group(1) if fast else 0)
        arenas.append(
            {
                "system_mb": round(int(current.group(1) if current else 0) / 2**20, 1),
                "free_mb": round(free / 2**20, 1),
            }
        )
    return arenas


class Probe:
    """Samples of one connector process: RSS, smaps by kind, malloc_info by arena."""

    def __init__(self, child: Child, diag: Path) -> None:
        self.child, self.diag = child, diag
        self.samples: list[dict[str, Any]] = []

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.diag / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def take(self, label: str) -> dict[str, Any]:
        (self.diag / "request.tmp").write_text(label)
        (self.diag / "request.tmp").replace(self.diag / "request")
        wait_until(lambda: not (self.diag / "request").exists(), self.child, 60, "malloc_info")
        arenas = malloc_arenas((self.diag / f"malloc-{label}.xml").read_text())
        raw = Path(f"/proc/{self.child.pid}/smaps").read_text()
        (self.diag / f"smaps-{label}.txt").write_text(raw)
        sample = {
            "label": label,
            "rss_mb": round(self.child.rss_mb() or 0.0, 1),
            "smaps_mb": smaps(self.child.pid),
            "arenas": len(arenas),
            "malloc_system_mb": round(sum(a["system_mb"] for a in arenas), 1),
            "malloc_free_mb": round(sum(a["free_mb"] for a in arenas), 1),
            "by_arena": arenas,
            "threads": len(self.status().get("threads", [])),
            "cpu_s": round(cpu_seconds(self.child.pid), 2),
        }
        self.samples.append(sample)
        print(
            f"  {label:<14} RSS {sample['rss_mb']:>6} MiB  {sample['smaps_mb']}  "
            f"arenas {sample['arenas']:>2} held {sample['malloc_system_mb']:>6} "
            f"free {sample['malloc_free_mb']:>6}  threads {sample['threads']}",
            flush=True,
        )
        return sample


class Stream(threading.Thread):
    """--rate events a second until stopped."""

    def __init__(self, publisher: Publisher, rate: int) -> None:
        super().__init__(name="events", daemon=True)
        self.publisher, self.rate = publisher, rate
        self.stop = threading.Event()

    def run(self) -> None:
        started, burst = time.time(), max(1, self.rate // 100)
        i = 0
        while not self.stop.is_set():
            if i % burst == 0:
                time.sleep(max(0.0, started + i / self.rate - time.time()))
                self.publisher.producer.poll(0)
            self.publisher.send(i)
            i += 1
        self.publisher.flush()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=6, help="published after the first")
    parser.add_argument("--rate", type=int, default=500, help="events/s")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1_000, help="items of the first version")
    parser.add_argument("--grow", type=int, default=600, help="items added per version")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds before version 2")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after a refresh")
    parser.add_argument("--label", default="run")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the connector")
    parser.add_argument("--tracemalloc", action="store_true", help="trace the connector's heap")
    return parser.parse_args()


def run(base: ConnectorSettings, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = prepare(base, f"steps-{uuid.uuid4().hex[:6]}")
    client = redis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.dataset_group)
    store = ModelStore(client, keys)
    items = [args.items + n * args.grow for n in range(args.versions + 1)]
    store.publish(random_version(items[0], seed=0), keep=2)
    traffic = Traffic("steps", 7, args.users, max(items), args.rate, int(time.time()))
    publisher = Publisher(settings, traffic)
    # The refresh in the connector's own process, where the diagnostics hook sees it (its
    # threads, its malloc_info); --env STREAMREC_LISTS_REFRESH_PROCESSES=1 cannot be
    # sampled this way, since the hook reports the connector process alone.
    env = connector_env(settings) | {"STREAMREC_LISTS_REFRESH_PROCESSES": "0"}
    env |= dict(kv.split("=", 1) for kv in args.env)
    diag = workdir / "diag"
    diag.mkdir()
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root / "bench" / "diag"), env.get("PYTHONPATH", str(root))]
    )
    env["STREAMREC_DIAG_DIR"] = str(diag)
    if args.tracemalloc:
        env["STREAMREC_DIAG_TRACEMALLOC"] = "1"
    child = start("connector", ["streamrec", "connector"], env, workdir)
    stream = Stream(publisher, args.rate)
    try:
        wait_until(lambda: bool(Probe(child, diag).status()), child, 120, "the connector")
        stream.start()
        probe = Probe(child, diag)
        time.sleep(args.warm_up)
        for n, size in enumerate(items[1:], start=2):
            version_steps(probe, store, n, size, args.settle)
        stream.stop.set()
        stream.join(120)
        backlog = publisher.sent - counted(client, keys)
    finally:
        child.stop()
    return {"samples": probe.samples, "items": items, "events": publisher.sent, "backlog": backlog}


def version_steps(probe: Probe, store: ModelStore, n: int, items: int, settle: float) -> None:
    """Publish version n; sample before, after the swap, after the refresh, after settling."""
    done = probe.status().get("refresh_active_done", 0)
    probe.take(f"v{n}-before")
    old = store.current_version()
    store.publish(random_version(items, seed=n), keep=2)
    swapped = lambda: "lists-refresh" in probe.status().get("threads", []) or refreshed()  # noqa: E731
    refreshed = lambda: probe.status().get("refresh_active_done", 0) > done  # noqa: E731
    wait_until(swapped, probe.child, 120, f"version {n} ({old} replaced)")
    probe.take(f"v{n}-swapped")
    wait_until(refreshed, probe.child, 600, f"the refresh after version {n}")
    time.sleep(1.0)  # the trim after the refresh
    probe.take(f"v{n}-refreshed")
    time.sleep(settle)
    probe.take(f"v{n}-settled")


def main() -> None:
    logs.configure(verbose=False)
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-steps-"))
    print(f"run folder (connector log, malloc_info): {workdir}", flush=True)
    with services() as (kafka, redis_url):
        base = ConnectorSettings(kafka_bootstrap=kafka, redis_url=redis_url)
        result = run(base, args, workdir)
    settled = [s["rss_mb"] for s in result["samples"] if s["label"].endswith("-settled")]
    first = result["samples"][0]["rss_mb"]
    figures = {
        "label": args.label,
        "env": args.env,
        "items": result["items"],
        "rate": args.rate,
        "events": result["events"],
        "backlog_at_end": result["backlog"],
        "rss_mb_before_v2": first,
        "rss_mb_settled": settled,
        "growth_pct": round(100 * (settled[-1] - first) / first, 1),
        "peak_mb": max(s["rss_mb"] for s in result["samples"]),
        "cpu_s_from_v2": round(result["samples"][-1]["cpu_s"] - result["samples"][0]["cpu_s"], 1),
        "samples": result["samples"],
    }
    (workdir / "figures.json").write_text(json.dumps(figures))
    print(json.dumps({k: v for k, v in figures.items() if k != "samples"}))


if __name__ == "__main__":
    main()
