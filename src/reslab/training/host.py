"""Host (CPU process) settings: those that make CPU training faster, the context manager
that sets a training run's process-wide settings and restores them after it, the torch thread
count of a command (:func:`torch_threads`), and the machine a result was measured on
(:func:`conditions`).

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
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def flush_denormal_enabled() -> bool:
    """Whether the CPU flushes denormals to zero right now (torch has a setter, no getter):
    a float32 denormal times one is zero exactly when flushing is on."""
    import torch

    return bool((torch.tensor([1e-40], dtype=torch.float32) * 1.0)[0] == 0)


@contextmanager
def process_settings(*, seed: int, cpu: bool, deterministic: bool) -> Iterator[None]:
    """The process-wide settings of one training run, set on entry and restored on exit, so
    that a process calling ``train()`` again (the degradation experiment does, per net and
    seed) or doing anything else afterwards finds them as they were:

    - on CPU, ``torch.set_flush_denormal(True)``: deep plain nets run ~3x slower on denormal
      activations (benchmarks/RESULTS.md); ``RESLAB_FLUSH_DENORMAL=0`` leaves it off (for
      benchmarks/denormal.py, which measures that slowdown);
    - ``torch.use_deterministic_algorithms(True)`` when ``deterministic``;
    - the global RNGs (torch, CUDA if initialised, numpy, ``random``) seeded with ``seed``.

    Not restored: :func:`keep_freed_memory` (applied on CPU).  glibc has no way to read the
    thresholds back, and setting them at all turns off its adaptive mmap threshold, so no
    call returns malloc to its prior state; the setting is once per process by design.
    The trainer sets no thread count (that is the caller's, e.g. ``--threads``).
    """
    import random

    import numpy as np
    import torch

    flush_before = flush_denormal_enabled()
    det_before = (torch.are_deterministic_algorithms_enabled(),
                  torch.is_deterministic_algorithms_warn_only_enabled())
    rng_before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cuda_before = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        if cpu and os.environ.get("RESLAB_FLUSH_DENORMAL", "1") != "0":
            torch.set_flush_denormal(True)
            keep_freed_memory()  # fewer page faults on every step's activations (above)
        if deterministic:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        yield
    finally:
        torch.set_flush_denormal(flush_before)
        torch.use_deterministic_algorithms(det_before[0], warn_only=det_before[1])
        torch.set_rng_state(rng_before[0])
        np.random.set_state(rng_before[1])
        random.setstate(rng_before[2])
        if cuda_before is not None:
            torch.cuda.set_rng_state_all(cuda_before)


class StopFlag:
    """While entered, SIGINT/SIGTERM set a flag (the training loop then checkpoints at the
    next iteration and returns); the previous handlers are restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, _frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (unchanged if None), restoring the previous count.

    Tiny models want one thread: with another busy process on the cores, torch's
    spin-waiting OpenMP threads make small matmuls 10-100x slower.
    """
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu() -> tuple[str | None, list[str]]:
    """The CPU's model name and its vector flags that matter for torch, from /proc/cpuinfo."""
    cpu, flags = None, []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if cpu is None and line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = sorted(f for f in have if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"))
                    break
    except OSError:
        pass
    return cpu, flags


def conditions() -> dict[str, Any]:
    """The hardware and software a result was measured on, and the command that made it."""
    import torch

    from reslab._version import __version__

    cpu, flags = _cpu()
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "reslab": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "command": " ".join(["reslab", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("reslab", "__main__.py")
        else " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
