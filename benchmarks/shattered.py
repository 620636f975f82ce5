"""Time the shattered-gradients experiment: ``run()`` and ``plot()``, median of repeats.

    PYTHONPATH=src python benchmarks/shattered.py [--scale quick|full] [--repeats 3] [--threads N]

Prints the hardware, torch version and thread count with the timings.  On a shared
machine, OpenMP threads that spin-wait can make torch many times slower when other
processes hold the cores: compare ``--threads 1`` or set ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from reslab.experiments import base, shattered  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", choices=list(shattered.SCALES), default="quick")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cond = base.conditions()
    print(f"cpu {cond['cpu']} ({cond['cores']} cores), torch {cond['torch']}, threads {torch.get_num_threads()}, "
          f"python {cond['python']}")
    cfg = shattered.config_for(args.scale, seeds=args.seeds)
    print(f"scale {cfg.scale}: {cfg.seeds} seeds, depths {cfg.depths}, betas {cfg.betas}, width {cfg.width}, "
          f"grid {cfg.grid_points}")
    runs, plots = [], []
    for i in range(args.repeats):
        t = time.perf_counter()
        results = shattered.run(cfg)
        runs.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            shattered.plot(results, tmp)
            plots.append(time.perf_counter() - t)
        print(f"  repeat {i + 1}: run {runs[-1]:.2f} s, plot {plots[-1]:.2f} s", flush=True)
    print(f"median of {args.repeats}: run {statistics.median(runs):.2f} s, plot {statistics.median(plots):.2f} s, "
          f"total {statistics.median(r + q for r, q in zip(runs, plots)):.2f} s")
    base.print_verdict(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
