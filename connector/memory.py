"""Handing memory that was freed back to the operating system, where glibc keeps it.

A serving process that swaps a model version frees the old version's arrays, faiss index and
per-version data, but glibc's allocator keeps much of what it frees in its heaps and arenas
for reuse, so the process's resident size steps up at every version and never comes down.
`malloc_trim(0)` returns the free pages. Measured by bench/version_swap_memory.py (eight
100,000-item versions loaded in turn through a ModelHolder, each ranked once; RSS after
each swap): 209.7, 314.7, 339.4, 294.2, 342.3, 295.2, 343.2, 296.1 MiB when the freed memory
is kept, 209.7, 217.6, 218.6, 221.8, 223.4, 220.9, 223.0, 222.4 MiB with a trim after each
swap.

The trim does not reach everything. glibc raises its mmap threshold to the size of every
large block freed (up to 32 MiB), so once the first big temporary is freed the next ones no
longer get pages of their own but are carved from the arena of the thread that makes them;
16 arenas (its limit, 8 per core) were in use before the first swap, with 7 Python threads,
and the refresh of every active list after a new version runs in a new thread, which lands in
another arena each time. bench/version_steps.py (a real connector at 1,000 events/s, five
versions of 1,600 to 4,000 items) measured what that leaves: RSS 193.4 MiB before the second
version, 252.8 after the fourth; the free memory malloc_info counts in the arenas 30.2 to
86.7 MiB, with arenas of 15.9 MiB fully resident and 15 MiB of each free, through the trims
after every swap and refresh (docs/performance-log.md). `fix_mmap_threshold` stops the
threshold moving: blocks from 1 MiB up (a refresh's or a batch's matrices) are then mapped
on their own and unmapped when freed, whatever thread made them; in the run after, the same
benchmark went from 180.4 to 198.0 MiB, for about 5% more CPU per refreshed list
(bench/refresh_cpu.py at 4,000 items: the fresh pages of each mapping are faulted in again).
On a C library without these calls (musl, macOS) both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20  # blocks this big or bigger get their own mapping
TRIM_THRESHOLD_BYTES = 64 << 20  # free memory a heap's top keeps before handing it back


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def return_freed_memory() -> bool:
    """Give the allocator's free pages back to the OS; whether the C library could."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def fix_mmap_threshold(size: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Give every block of `size` bytes or more its own mapping from now on, in every thread,
    so freeing it hands it back to the OS at once instead of leaving it at the top of a
    thread's arena, where malloc_trim cannot reach it; whether the C library took it.

    Setting the threshold also stops glibc moving the trim threshold, which then stays at
    its 128 KiB default: every free at the top of a heap handed pages back, and the next
    batch faulted them in again. That cost a list refresh at 100,000 items about a quarter
    more CPU (docs/performance-log.md, List refresh), so the trim threshold is raised as
    well; what a heap's top keeps is still handed back by return_freed_memory after a
    version's refresh."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trimmed = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return bool(mallopt(M_MMAP_THRESHOLD, size)) and trimmed
