"""The cost of ``probe_every`` (per-module gradient norms in metrics.jsonl during training).

    PYTHONPATH=src .venv/bin/python benchmarks/probe_overhead.py [--pairs 6] [--iterations 200]

A tiny CPU run (cifar-resnet8 at width 0.25, batch 32, synthetic data, a metrics line every 10
iterations) with ``probe_every=100`` against ``probe_every=0``, alternating in one process
(ABBA) over ``--pairs`` pairs.  Reports the ratio of median step times (each 10-iteration
window's time per step, first window skipped, pooled per arm), the ratio of the loops' median
times, and one probe's own cost (:func:`reslab.probes.grad_norms.param_grad_norms` after a
backward, median of 50) against a step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import harness

TINY = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 1024, "val_size": 256,
        "batch_size": 32, "log_every": 10, "eval_every": 0, "ckpt_every": 0, "schedule": "constant",
        "amp": "off", "device": "cpu"}


def one_run(probe_every: int, iterations: int) -> tuple[list[float], float]:
    """(seconds per step of each window but the first, the loop's seconds)."""
    from reslab.training import train
    from reslab.training.metrics import read_metrics

    with tempfile.TemporaryDirectory() as tmp:
        train({**TINY, "iterations": iterations, "probe_every": probe_every}, Path(tmp) / "run", quiet=True)
        rows = [r for r in read_metrics(Path(tmp) / "run") if "images_per_s" in r]
    return [TINY["batch_size"] / r["images_per_s"] for r in rows[1:]], rows[-1]["elapsed"]


def probe_cost(repeats: int = 50) -> float:
    import torch
    import torch.nn.functional as F

    import reslab
    from reslab.probes.grad_norms import param_grad_norms

    torch.manual_seed(0)
    model = reslab.create_model("cifar-resnet8", width=0.25).to(memory_format=torch.channels_last)
    x = torch.randn(32, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    F.cross_entropy(model(x), torch.zeros(32, dtype=torch.long)).backward()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        param_grad_norms(model)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=6, help="(off, on) pairs, alternating ABBA")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--probe-every", type=int, default=100)
    args = ap.parse_args()
    cpu = harness.cpu_info()
    print(f"machine  {cpu['model']} (family/model {cpu['family/model']}), {cpu['cores']} logical cores")
    import torch

    print(f"torch    {torch.__version__}, {torch.get_num_threads()} threads; load {harness.os.getloadavg()}")
    steps: dict = {0: [], args.probe_every: []}
    loops: dict = {0: [], args.probe_every: []}
    one_run(0, 20)  # warm-up: oneDNN kernels, allocator
    for i in range(args.pairs):
        for pe in ((0, args.probe_every) if i % 2 == 0 else (args.probe_every, 0)):
            s, loop = one_run(pe, args.iterations)
            steps[pe] += s
            loops[pe].append(loop)
    on, off = args.probe_every, 0
    med = statistics.median
    cost = probe_cost()
    print(f"median step: off {1e3 * med(steps[off]):.2f} ms, probe_every={on} {1e3 * med(steps[on]):.2f} ms, "
          f"ratio {med(steps[on]) / med(steps[off]):.3f} (n={len(steps[off])} windows per arm)")
    print(f"loop of {args.iterations} iterations, median of {args.pairs}: off {med(loops[off]):.3f} s, "
          f"on {med(loops[on]):.3f} s, ratio {med(loops[on]) / med(loops[off]):.3f}")
    print(f"one probe (param_grad_norms, median of 50): {1e3 * cost:.2f} ms = {cost / med(steps[off]):.2f} steps; "
          f"amortised over {on} iterations: {100 * cost / (on * med(steps[off])):.2f}% of step time")
    print(f"load at end {harness.os.getloadavg()}")


if __name__ == "__main__":
    main()
