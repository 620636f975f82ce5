"""Training speed on the CPU: every CPU training benchmark here, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/train_speed.py [--repeats 5] [--json out.json]

Runs, one job after another, each job in a fresh process (:mod:`harness`):

1. ``peaks.py``: fp32 and bf16 matmul peaks, at the start (and again at the end);
2. ``throughput.py``: images/s of ResNet-20 and ResNet-56 through ``reslab.training.train``
   against the reference pipeline, ABBA over ``--rounds`` rounds (target >= 2.0x), and the
   ablation (one reslab setting undone at a time); with the peaks, the achieved training
   FLOP/s (target >= 50% of the bf16 peak);
3. ``denormal.py``: plain-56's first epoch against later ones, with and without flush-to-zero
   (target <= 1.2x);
4. ``memory.py``: peak resident memory of ResNet-56 training (target <= 1.5 GiB);

with the conditions (CPU, flags, torch, date, and for every job the load and the CPU time
*other* processes took), then Markdown tables ready for RESULTS.md.  Each benchmark also
runs alone (``benchmarks/<name>.py --help``).

About 9-10 minutes on 2 idle Xeon cores.  Not a test; never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import denormal
import harness
import memory
import peaks
import throughput

PARTS = ("throughput", "peaks", "denormal", "memory")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(ap)
    throughput.add_args(ap)
    ap.add_argument("--epochs", type=int, default=3, help="10-iteration epochs per plain-56 denormal run")
    ap.add_argument("--only", default=",".join(PARTS),
                    help="comma-separated parts to run: throughput, peaks, denormal, memory")
    args = ap.parse_args()
    if args.job:
        raise SystemExit("train_speed.py runs no jobs itself; each benchmark module runs its own")
    log = harness.print_flush
    parts = set(args.only.split(","))
    R: dict = {"cpu": harness.log_conditions(log, args.threads, args.max_load, args.max_wait), "args": vars(args),
               "jobs": []}
    import torch

    R["torch"] = torch.__version__
    log(f"method    batch {harness.BATCH}; median of {args.repeats} windows of {args.steps} iterations after a "
        "warm-up window")
    log("jobs (each a fresh process):")
    t_start = time.perf_counter()
    if "peaks" in parts:
        R.update(peaks.run(args, R, log))
    if "throughput" in parts:
        R.update(throughput.run(args, R, log))
    if "denormal" in parts:
        R.update(denormal.run(args, R, log))
    if "memory" in parts:
        R.update(memory.run(args, R, log))
    if "peaks" in parts:
        R.update(peaks.run(args, R, log))
    R["wall_s"], R["load_end"] = round(time.perf_counter() - t_start, 1), os.getloadavg()
    harness.log_totals(R, log)
    for module in (throughput, peaks, denormal, memory):
        module.report(R, log)
    if args.json:
        Path(args.json).write_text(json.dumps(R, indent=1) + "\n")


if __name__ == "__main__":
    main()
