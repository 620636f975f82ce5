"""Does bf16 autocast cost accuracy?  fp32 vs bf16 training on a Fashion-MNIST quick run.

    PYTHONPATH=src .venv/bin/python benchmarks/bf16_accuracy.py [--seeds 3] [--iterations 200]

ResNet-20, Fashion-MNIST (8,000 training images, 1,000 held out), one-cycle schedule at
lr 0.1, batch 128, the same seeds for both precisions: the only difference is ``amp``.
Reports final training error (mean of the last 40 iterations) and validation error,
mean ± std over seeds, and the difference against the seed-to-seed spread.
Not a test: about 6-10 minutes on 2 CPU cores (bf16 is emulated on CPUs without AVX512-BF16).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reslab.experiments.base import conditions  # noqa: E402
from reslab.training import train  # noqa: E402
from reslab.training.metrics import read_metrics  # noqa: E402


def one(amp: str, seed: int, iterations: int, root: Path) -> tuple[float, float, float]:
    cfg = {"model": "resnet20", "dataset": "fashion-mnist", "train_subset": 8000, "val_size": 1000,
           "iterations": iterations, "schedule": "onecycle", "lr": 0.1, "batch_size": 128, "seed": seed,
           "amp": amp, "log_every": 20, "eval_every": iterations, "ckpt_every": 0}
    r = train(cfg, root / f"{amp}-s{seed}", quiet=True, overwrite=True)  # a rerun replaces the old run
    rows = [m for m in read_metrics(root / f"{amp}-s{seed}") if "train_error" in m][-2:]
    return statistics.mean(m["train_error"] for m in rows), r.val_error, r.images_per_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=200)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reslab-bf16-"))
    c = conditions()
    print(f"{c['cpu']}, {c['cores']} cores, torch {c['torch']}, {c['date']}, load {os.getloadavg()[0]:.2f}")
    res = {}
    for amp in ("off", "bf16"):
        res[amp] = [one(amp, s, args.iterations, root) for s in range(args.seeds)]
        for s, (tr, va, ips) in enumerate(res[amp]):
            print(f"  amp={amp:<4} seed {s}: train error {tr:.4f}, val error {va:.4f}, {ips:.0f} img/s", flush=True)
    print("\n| amp | train error (mean ± std) | val error (mean ± std) | img/s |\n|---|---|---|---|")
    for amp, rows in res.items():
        tr, va, ips = zip(*rows)
        print(f"| {'fp32' if amp == 'off' else 'bf16'} | {statistics.mean(tr):.4f} ± {statistics.stdev(tr):.4f} | "
              f"{statistics.mean(va):.4f} ± {statistics.stdev(va):.4f} | {statistics.median(ips):.0f} |")
    d_tr = statistics.mean(r[0] for r in res["bf16"]) - statistics.mean(r[0] for r in res["off"])
    d_va = statistics.mean(r[1] for r in res["bf16"]) - statistics.mean(r[1] for r in res["off"])
    spread = max(statistics.stdev(r[1] for r in res[a]) for a in res)
    print(f"\nbf16 - fp32: train error {d_tr:+.4f}, val error {d_va:+.4f}; largest seed std of val error {spread:.4f}"
          f" -> {'within' if abs(d_va) <= 2 * spread else 'OUTSIDE'} 2 std of seed noise (n={args.seeds} each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
