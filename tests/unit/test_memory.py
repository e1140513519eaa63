"""Handing freed memory back to the OS after a version swap (connector/memory.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

from tests.memory_scenario import peak_and_freed

# In a fresh interpreter, so the heap holds only what the scenario allocates: 64 KB blocks
# (under glibc's mmap threshold, so in its heap) with a live one allocated after them, as
# the next model version is after the old one's arrays; RSS after freeing them, and after
# return_freed_memory().
SCENARIO = """
import numpy as np
from connector.memory import return_freed_memory

def resident_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

blocks = [np.ones(8_000, np.float64) for _ in range(4_000)]  # 256 MB
later = np.ones(10)
blocks.clear()
freed = resident_mib()
trimmed = return_freed_memory() if {trim} else False
print(freed, resident_mib(), trimmed)
"""


def _run(trim: bool) -> tuple[float, float, str]:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO.format(trim=trim)],
        capture_output=True,
        text=True,
        check=True,
    )
    freed, after, trimmed = done.stdout.split()
    return float(freed), float(after), trimmed


def test_memory_freed_into_glibcs_heap_goes_back_to_the_os() -> None:
    assert platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    freed, after, trimmed = _run(trim=True)
    assert trimmed == "True"
    assert after < freed - 100  # measured: 167 -> 28 MiB
    kept, still, _ = _run(trim=False)
    assert still > kept - 10  # freeing alone left it resident: what the trim is for


FIX_THRESHOLD = "from connector.memory import fix_mmap_threshold\nfix_mmap_threshold()"


def test_a_threads_large_temporaries_go_back_to_the_os_when_freed() -> None:
    peak, freed = peak_and_freed(FIX_THRESHOLD)
    assert freed < peak - 30  # measured: 66.3 -> 28.0 MiB
    kept_peak, kept = peak_and_freed("")
    assert kept > kept_peak - 5  # glibc's moving threshold kept all 40 MB resident
