"""Arrays mapped read-only from .npy files, and giving their touched pages back.

The prepared training data (worker/data/prepared.py) is read through maps, so the kernel
reads pages as they are touched. A touched page stays in the process's resident set until
it is given back: `release` tells the kernel this process no longer needs the pages (they
stay in the page cache), so a pass over a column does not stay resident after it.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np


def map_npy(path: Path) -> np.ndarray:
    """A read-only array over a .npy file's data (pages are read when touched)."""
    array: np.ndarray = np.load(path, mmap_mode="r")
    return array


def release(array: np.ndarray) -> None:
    """Give back the pages of a mapped array this process has touched; nothing for an
    array in memory."""
    mapping = getattr(array, "_mmap", None)
    if isinstance(mapping, mmap.mmap) and len(mapping):
        mapping.madvise(mmap.MADV_DONTNEED)
