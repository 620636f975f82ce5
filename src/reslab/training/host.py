"""Host (CPU process) settings that make CPU training faster.

**glibc returns big blocks to the kernel.**  A training step on the CPU allocates and frees
activations and gradients of megabytes each (ResNet-20, batch 128: 8 MiB per 16-channel
activation).  glibc serves blocks above its mmap threshold with a fresh ``mmap`` and gives
them back with ``munmap`` on free, and trims the heap top past its trim threshold, so the
next step page-faults that memory back in and the kernel zeroes every page again.  Raising
both thresholds keeps freed memory in the process for reuse.  Measured on the 2-core
developer machine (benchmarks/RESULTS.md), ResNet-20 at batch 128:

- a bare ``forward, backward, SGD step`` loop: 18-27k minor faults and 25-45 ms of system
  time per step by default, none with this setting, and 11-13% more images/s;
- reslab's trainer, whose allocation pattern already faults less (ResNet-20 3.5-4.4k, ResNet-56
  5-6k faults per step by default; 1.5k and 3.6k with this setting, and about half the system
  time): in six A/B pairs of fresh processes ResNet-20 ran -0.3% to +6.5% faster (median
  +1.7%), in two pairs ResNet-56 +1.6% and +2.8%, and the benchmark's paired ablation -1%.
  Through the trainer the gain is at the noise level; in your own CPU loop it can be 12%.

The cost: memory freed during training is not returned to the OS until the process ends,
so the resident size stays at its high-water mark.  Set ``RESLAB_MALLOC=system`` to leave
glibc's defaults alone.  The same effect is what Intel's and PyTorch's CPU tuning guides get
from preloading jemalloc or tcmalloc; this needs nothing installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30   # blocks up to 1 GiB come from the heap and stay there when freed
MMAP_FALLBACK_BYTES = 32 << 20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (once per process).

    Returns whether the setting is in effect: False on other C libraries or operating
    systems, or when ``RESLAB_MALLOC=system``.  Idempotent and cheap to call again.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RESLAB_MALLOC", "").lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 when glibc refuses the value.  Older glibc caps the mmap
    # threshold at HEAP_MAX_SIZE/2 (32 MiB on 64-bit), still above any ResNet activation here.
    mmap_ok = bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) or bool(mallopt(M_MMAP_THRESHOLD, MMAP_FALLBACK_BYTES))
    trim_ok = bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    _applied = mmap_ok and trim_ok
    return _applied
