"""Diagnostics for bench/version_steps.py, loaded into the `streamrec connector` it starts
(this folder goes first on that child's PYTHONPATH; nothing in the product imports it).

A daemon thread writes `status.json` to STREAMREC_DIAG_DIR every 0.2 s (live thread names,
how many refreshes of every active list have finished) and answers a request file: when
`request` appears holding a label, it writes glibc's malloc_info XML and, when tracemalloc
runs (STREAMREC_DIAG_TRACEMALLOC=1), a snapshot, both named by the label, then deletes the
request (and with STREAMREC_DIAG_PYMALLOC=1 prints CPython's sys._debugmallocstats() to the
connector's log after a line `diag-pymalloc <label>`). Being a separate thread, it never
waits on the connector's event loop.

With STREAMREC_DIAG_ONE_REFRESH_THREAD=1 it also replaces
connector.serving.lists_setup._in_background
(a new thread per refresh of every active list) by one long-lived thread that runs them in
turn: a variant to measure, not a product setting.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

_DIR = os.environ.get("STREAMREC_DIAG_DIR")
_done = {"refresh_active": 0}


def _malloc_info(path: Path) -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    handle = libc.fopen(str(path).encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)


def _loop(folder: Path) -> None:
    request = folder / "request"
    while True:
        if request.exists():
            label = request.read_text().strip()
            _malloc_info(folder / f"malloc-{label}.xml")
            if os.environ.get("STREAMREC_DIAG_PYMALLOC") == "1":  # to the connector's log
                print(f"diag-pymalloc {label}", file=sys.stderr, flush=True)
                sys._debugmallocstats()
            if tracemalloc.is_tracing():
                tracemalloc.take_snapshot().dump(str(folder / f"trace-{label}.snap"))
            request.unlink()
        status = {
            "threads": sorted(t.name for t in threading.enumerate()),
            "refresh_active_done": _done["refresh_active"],
            "t": time.time(),
        }
        (folder / "status.tmp").write_text(json.dumps(status))
        (folder / "status.tmp").replace(folder / "status.json")
        time.sleep(0.2)


def _count_refreshes() -> None:
    from connector.serving.list_refresh import ListRefresher

    original = ListRefresher.refresh_active

    def counted(self: ListRefresher, *args: object, **kwargs: object) -> int:
        try:
            return original(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            _done["refresh_active"] += 1

    ListRefresher.refresh_active = counted  # type: ignore[method-assign]


def _one_refresh_thread() -> None:
    import queue

    from connector.memory import return_freed_memory
    from connector.serving import lists_setup

    work: queue.Queue[object] = queue.Queue()

    def run() -> None:
        while True:
            job = work.get()
            job()  # type: ignore[operator]
            return_freed_memory()

    threading.Thread(target=run, name="lists-refresh", daemon=True).start()
    lists_setup._in_background = work.put  # type: ignore[assignment]


if _DIR:
    if os.environ.get("STREAMREC_DIAG_TRACEMALLOC") == "1":
        tracemalloc.start(6)
    _count_refreshes()
    if os.environ.get("STREAMREC_DIAG_ONE_REFRESH_THREAD") == "1":
        _one_refresh_thread()
    threading.Thread(target=_loop, args=(Path(_DIR),), name="diag", daemon=True).start()
