"""Handing memory that was freed back to the operating system, where glibc keeps it.

A serving process that swaps a model version frees the old version's arrays, faiss index and
per-version data, but glibc's allocator keeps much of what it frees in its heaps and arenas
for reuse, so the process's resident size steps up at every version and never comes down.
`malloc_trim(0)` returns the free pages. Measured by bench/version_swap_memory.py (eight
100,000-item versions loaded in turn through a ModelHolder, each ranked once; RSS after
each swap): 209.7, 314.7, 339.4, 294.2, 342.3, 295.2, 343.2, 296.1 MiB when the freed memory
is kept, 209.7, 217.6, 218.6, 221.8, 223.4, 220.9, 223.0, 222.4 MiB with a trim after each
swap. On a C library without malloc_trim (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)


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
