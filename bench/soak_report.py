"""The soak benchmark's figures: per-minute throughput, API latency and memory from the
samples taken during the run, the memory comparison, and the printed tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROCESSES = ("connector", "api", "worker")
FIXED_WORKING_SET = ("connector", "api")  # what they hold does not grow with the data
# The worker holds its training data, which grows by design (every event is a row of the
# Interactions dataset): its growth is stated per 100,000 rows added after the warm-up too.
OK_STATUSES = (200, 299)  # 299: a 200 with an empty list, counted apart from errors


@dataclass
class Sample:
    """The state of the run `t` seconds after the steady phase started."""

    t: float
    sent: int
    counted: int
    rss_mb: dict[str, float | None]
    version: str | None
    alive: dict[str, bool] = field(default_factory=dict)
    # The connector's and the worker's own process and their descendants (the connector's
    # list refresh processes, the worker's run in progress) apart.
    parts_mb: dict[str, float | None] = field(default_factory=dict)


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile (1-99), None without values."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


def _at(samples: Sequence[Sample], t: float) -> Sample:
    """The last sample taken at or before `t` (the first one if none is)."""
    before = [s for s in samples if s.t <= t + 1e-6]
    return before[-1] if before else samples[0]


def per_minute(
    samples: Sequence[Sample], requests: Sequence[list[float]], start: float, seconds: float
) -> list[dict[str, Any]]:
    """One row per minute of the steady phase (the last one may be shorter)."""
    rows = []
    for minute in range(int((seconds + 59) // 60)):
        low, high = minute * 60.0, min(seconds, minute * 60.0 + 60.0)
        first, last = _at(samples, low), _at(samples, high)
        span = max(last.t - first.t, 1e-9)
        inside = [s for s in samples if low <= s.t <= high]
        window = [r for r in requests if low <= r[0] - start < high]
        latencies = [r[1] for r in window if r[2] in OK_STATUSES]
        rows.append(
            {
                "minute": minute + 1,
                "produced_per_s": round((last.sent - first.sent) / span),
                "ingested_per_s": round((last.counted - first.counted) / span),
                "max_backlog": max((s.sent - s.counted for s in inside), default=0),
                "api_requests": len(window),
                "api_p50_ms": percentile(latencies, 50),
                "api_p95_ms": percentile(latencies, 95),
                "api_p99_ms": percentile(latencies, 99),
                "api_max_ms": round(max(latencies), 1) if latencies else None,
                "api_errors": sum(1 for r in window if r[2] not in (*OK_STATUSES, 503)),
                "api_503": sum(1 for r in window if r[2] == 503),
                "rss_mb": {name: last.rss_mb.get(name) for name in PROCESSES},
                "version": last.version,
            }
        )
    return rows


def memory(
    samples: Sequence[Sample],
    warm_up: float,
    parts: bool = False,
    restarts: dict[str, tuple[float, float]] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Per process: RSS (MiB) at the end of the warm-up, at the end, its peak, growth %;
    with `parts`, per part (a process alone, its descendants) of `Sample.parts_mb` instead.
    A process in `restarts` ({name: (killed at, restarted at)}, seconds of the run) is read
    in two lives: from the warm-up to its kill, and from `warm_up` after its restart to the
    end; the life with the larger growth is reported (a fresh process is no baseline)."""
    after = [s for s in samples if s.t >= warm_up] or list(samples[-1:])
    result: dict[str, dict[str, float | None]] = {}
    names = list(dict.fromkeys(k for s in after for k in s.parts_mb)) if parts else PROCESSES
    for name in names:
        lives = [after]
        restart = (restarts or {}).get(name.split()[0])
        if restart is not None:
            killed, restarted = restart
            lives = [
                [s for s in after if s.t < killed],
                [s for s in samples if s.t >= restarted + warm_up],
            ]
        chosen: dict[str, float | None] | None = None
        peak: float | None = None
        for life in lives:
            values = [(s.parts_mb if parts else s.rss_mb).get(name) for s in life]
            known = [v for v in values if v is not None]
            if not known:
                continue
            peak = max(known + ([peak] if peak is not None else []))
            start, end = known[0], known[-1]
            growth = round((end - start) / start * 100, 1) if start and end else None
            figures = {"start_mb": _round(start), "end_mb": _round(end), "growth_pct": growth}
            if chosen is None or (growth or 0.0) > (chosen["growth_pct"] or 0.0):
                chosen = figures
        chosen = chosen or {"start_mb": None, "end_mb": None, "growth_pct": None}
        result[name] = {**chosen, "peak_mb": _round(peak)}
    return result


def data_following(
    samples: Sequence[Sample], mem: dict[str, dict[str, float | None]], warm_up: float
) -> dict[str, float | None]:
    """Memory growth read against what the processes hold: the largest growth among the
    processes of a fixed working set, and the worker's growth per 100,000 rows added to
    the dataset after the warm-up (rows: events counted in Redis, one row each)."""
    after = [s for s in samples if s.t >= warm_up] or list(samples[-1:])
    rows_start, rows_end = after[0].counted, after[-1].counted
    fixed = [mem[name]["growth_pct"] for name in FIXED_WORKING_SET]
    worker = mem["worker"]
    added = rows_end - rows_start
    per_rows = None
    if worker["start_mb"] is not None and worker["end_mb"] is not None and added > 0:
        per_rows = round((worker["end_mb"] - worker["start_mb"]) / added * 100_000, 2)
    return {
        "fixed_growth_pct": max((g for g in fixed if g is not None), default=None),
        "rows_start": rows_start,
        "rows_end": rows_end,
        "worker_mb_per_100k_rows": per_rows,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def print_minutes(rows: Sequence[dict[str, Any]]) -> None:
    header = (
        f"  {'min':>3} {'sent/s':>7} {'ingest/s':>8} {'backlog':>8} {'reqs':>6} {'p50':>7}"
        f" {'p95':>7} {'p99':>7} {'max':>8} {'errs':>5} {'503':>5} {'conn MB':>8} {'api MB':>7}"
        f" {'wrk MB':>7}  model"
    )
    print(
        "\nper minute (latencies of GetRecommendations in ms; errs: error responses but 503,"
        " counted apart; RSS at the minute's end)"
    )
    print(header)
    for r in rows:
        rss = r["rss_mb"]
        print(
            f"  {r['minute']:>3} {r['produced_per_s']:>7} {r['ingested_per_s']:>8}"
            f" {r['max_backlog']:>8} {r['api_requests']:>6} {_cell(r['api_p50_ms'])}"
            f" {_cell(r['api_p95_ms'])} {_cell(r['api_p99_ms'])} {_cell(r['api_max_ms'], 8)}"
            f" {r['api_errors']:>5} {r['api_503']:>5} {_cell(rss['connector'], 8)}"
            f" {_cell(rss['api'])}"
            f" {_cell(rss['worker'])}  {(r['version'] or '-')[:19]}"
        )


def _cell(value: float | None, width: int = 7) -> str:
    return f"{'-' if value is None else f'{value:.1f}':>{width}}"


def print_memory(
    mem: dict[str, dict[str, float | None]], warm_up: float, explained: dict[str, float | None]
) -> None:
    print(f"\nresident memory (MiB): after the {warm_up:.0f} s warm-up, at the end, peak")
    for name, figures in mem.items():
        print(
            f"  {name:<10} {_cell(figures['start_mb'], 8)} {_cell(figures['end_mb'], 8)}"
            f" {_cell(figures['peak_mb'], 8)}   growth {figures['growth_pct']}%"
        )
    print(
        f"  fixed working set ({', '.join(FIXED_WORKING_SET)}): largest growth"
        f" {explained['fixed_growth_pct']}%; worker (holds the dataset,"
        f" {explained['rows_start']:,} -> {explained['rows_end']:,} rows after the warm-up):"
        f" {explained['worker_mb_per_100k_rows']} MiB per 100,000 rows"
    )


def print_summary(lines: Sequence[tuple[str, Any]]) -> None:
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"  {name:<{width}}  {value}")
