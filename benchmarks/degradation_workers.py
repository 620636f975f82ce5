"""Is it faster to train the degradation experiment's narrow nets two at a time, one thread
each, than one at a time with two threads?

    PYTHONPATH=src .venv/bin/python benchmarks/degradation_workers.py [--iterations 60] [--rounds 3]

Trains ResNet-56 at the quick preset's settings (width 0.25, batch 64, Fashion-MNIST) for
``--iterations`` iterations in fresh processes, three ways, alternating over ``--rounds``:
one process with 2 threads, one process with 1 thread, and two processes with 1 thread
each at once.  Prints images/s per way (median over rounds; for two processes, the sum of
the two, each timed by its own process over its training loop) and the ratio of the two-process throughput to the one-process, 2-thread one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reslab.experiments.base import conditions  # noqa: E402

CHILD = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from reslab.experiments import base, degradation
cfg = degradation.config_for("quick", seeds=1, iterations=int(sys.argv[3]), eval_every=0, log_every=int(sys.argv[3]),
                             train_error_window=1, test_subset=100, val_size=100)
ctx = base.Context(sys.argv[2], quiet=True)
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    t = time.perf_counter()
    degradation.train_one(cfg, ctx, "resnet", 56, 0)
    print(f"{time.perf_counter() - t:.3f}", file=sys.stderr)
"""


def _launch(threads: int, out: str, iterations: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(threads), out, str(iterations)], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _seconds(proc: subprocess.Popen) -> float:
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"child failed:\n{err}")
    return float(err.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    images = args.iterations * 64
    rates: dict[str, list[float]] = {"1 process x 2 threads": [], "1 process x 1 thread": [],
                                     "2 processes x 1 thread": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(rates) if r % 2 == 0 else list(reversed(rates))
            for way in order:
                if way.startswith("2 processes"):
                    procs = [_launch(1, f"{tmp}/{r}-{i}", args.iterations) for i in range(2)]
                    # each child times its own training; started together, the two overlap
                    rates[way].append(sum(images / _seconds(p) for p in procs))
                else:
                    threads = 2 if "2 threads" in way else 1
                    rates[way].append(images / _seconds(_launch(threads, f"{tmp}/{r}-x", args.iterations)))
    c = conditions()
    print(f"machine: {c['cpu']} ({' '.join(c['cpu_flags'])}), {c['cores']} cores, torch {c['torch']}, {c['date']}")
    print(f"ResNet-56, width 0.25, batch 64, {args.iterations} iterations, {args.rounds} rounds (median):")
    for way, v in rates.items():
        print(f"  {way:<24} {statistics.median(v):7.0f} img/s   (all: {', '.join(f'{x:.0f}' for x in v)})")
    base = statistics.median(rates["1 process x 2 threads"])
    print(f"  two processes / one process with 2 threads: {statistics.median(rates['2 processes x 1 thread']) / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
