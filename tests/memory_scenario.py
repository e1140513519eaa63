"""A thread's large temporaries and what stays resident of them, in a fresh interpreter.

After `setup` runs, a thread frees a 32 MB block (mapped; its free raises glibc's mmap
threshold to its size), then allocates five 8 MB blocks, as a list refresh's matrices, and
frees them; it prints RSS at their peak and after the frees, with no trim. The unit test of
connector/memory.py and the integration test of the list refresher's setting both run it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

_SOURCE = """
import threading
import numpy as np

def resident_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024

{setup}
found = []

def refresh():
    np.ones(4_000_000, np.float64)
    blocks = [np.ones(1_000_000, np.float64) for _ in range(5)]
    found.append(resident_mib())
    blocks.clear()
    found.append(resident_mib())

thread = threading.Thread(target=refresh)
thread.start()
thread.join()
print(*found)
"""


def peak_and_freed(setup: str, env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """RSS in MiB at the temporaries' peak and after their free, `setup` having run first."""
    done = subprocess.run(
        [sys.executable, "-c", _SOURCE.format(setup=setup)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    peak, freed = done.stdout.split()
    return float(peak), float(freed)
