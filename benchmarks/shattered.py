"""Time the shattered-gradients experiment: ``run()`` and ``plot()``, median of repeats.

    PYTHONPATH=src python benchmarks/shattered.py [--scale quick|full] [--repeats 3] [--threads N]

Prints the hardware, torch version and thread count with the timings.  On a shared
machine, OpenMP threads that spin-wait can make torch many times slower when other
processes hold the cores: the experiment runs on one thread by default (``--threads N`` to compare), or set
``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reslab.experiments import base, shattered, shattered_plots  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", choices=list(shattered.SCALES), default="quick")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's, 1)")
    args = p.parse_args()
    cfg = shattered.config_for(args.scale, seeds=args.seeds, threads=args.threads)
    cond = base.conditions()
    print(f"cpu {cond['cpu']} ({cond['cores']} cores), torch {cond['torch']}, threads {cfg.threads}, "
          f"python {cond['python']}")
    print(f"scale {cfg.scale}: {cfg.seeds} seeds, depths {cfg.depths}, betas {cfg.betas}, block {cfg.block}, "
          f"width {cfg.width}, grid {cfg.grid_points}, noise yardsticks from {cfg.noise_walks} sequences")
    runs, plots = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            with base.torch_threads(cfg.threads):
                results = shattered.run(cfg, base.Context(Path(tmp) / "shattered"))
            runs.append(time.perf_counter() - t)
            t = time.perf_counter()
            shattered_plots.plot(results, tmp)
            plots.append(time.perf_counter() - t)
        print(f"  repeat {i + 1}: run {runs[-1]:.2f} s, plot {plots[-1]:.2f} s", flush=True)
    print(f"median of {args.repeats}: run {statistics.median(runs):.2f} s, plot {statistics.median(plots):.2f} s, "
          f"total {statistics.median(r + q for r, q in zip(runs, plots)):.2f} s")
    print(base.verdict_line(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
