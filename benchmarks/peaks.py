"""Matmul peaks and the trainer's achieved FLOP/s.

    PYTHONPATH=src .venv/bin/python benchmarks/peaks.py [--n 2048] [--repeats 5]

The fp32 and bf16 peaks of an ``n x n`` ``torch.mm`` (median of ``--repeats``), and
:func:`train_step_flops`, the FLOPs of one training step (``FlopCounterMode``, forward +
backward, multiply-add = 2) at batch 128.  ``train_speed.py`` measures the peaks at its start
and end and divides the throughput benchmark's steps/s x FLOPs by the higher one (target: >=
50% of the bf16 peak).  Jobs run through :mod:`harness`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import harness
from harness import BATCH, med


def job_peaks(n: int, repeats: int) -> dict:
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(2):
            torch.mm(a, b)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / statistics.median(times)
    return out


JOBS = {"peaks": job_peaks}


def train_step_flops(model: str) -> int:
    """FLOPs of one training step (forward + backward, multiply-add = 2) at batch 128."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    import reslab

    with torch.device("meta"):
        m = reslab.create_model(model)
        x, y = torch.empty(BATCH, 3, 32, 32), torch.zeros(BATCH, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(m(x), y).backward()
    return int(counter.get_total_flops())


def run(args, R: dict, log, n: int = 2048) -> dict:
    """One peak measurement, appended to ``R["peaks"]`` (train_speed.py calls it at start and end)."""
    job = harness.Jobs(__file__, R, args.threads, log)
    return {"peaks": R.get("peaks", []) + [dict(job(job="peaks", n=n, repeats=max(5, args.repeats)), n=n)]}


def report(R: dict, log) -> None:
    if "peaks" not in R:
        return
    p = {k: max(q[k] for q in R["peaks"]) for k in ("fp32", "bf16")}  # the higher of start and end
    log("")
    log(f"matmul peak ({R['peaks'][0].get('n', 2048)}x{R['peaks'][0].get('n', 2048)} torch.mm, median; the higher "
        f"of the run's start and end): fp32 {p['fp32'] / 1e9:.1f} GFLOP/s, bf16 {p['bf16'] / 1e9:.1f} GFLOP/s "
        "(start/end: " + ", ".join(f"{k} " + "/".join(f"{q[k] / 1e9:.0f}" for q in R["peaks"]) for k in ("fp32", "bf16"))
        + ")")
    if "trainer" in R:
        log("| training FLOP/s (forward+backward FLOPs / step time) | FLOPs/step | GFLOP/s | % fp32 peak | % bf16 peak |")
        log("|---|---:|---:|---:|---:|")
        for m in R["trainer"]:
            f = train_step_flops(m)
            for amp, v in R["trainer"][m].items():
                achieved = f * med(v["rates"]) / BATCH
                log(f"| {m}, amp {amp} | {f / 1e9:.1f} G | {achieved / 1e9:.1f} | {100 * achieved / p['fp32']:.0f}% "
                    f"| {100 * achieved / p['bf16']:.0f}% |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(ap)
    ap.add_argument("--n", type=int, default=2048, help="matrix size")
    ap.add_argument("--repeats", type=int, default=5, help="timed matmuls (median)")
    harness.standalone(__file__, JOBS, lambda args, R, log: run(args, R, log, args.n), report, ap)


if __name__ == "__main__":
    main()
