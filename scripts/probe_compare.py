"""Probe plain and residual nets at initialisation and after training, side by side.

    PYTHONPATH=src .venv/bin/python scripts/probe_compare.py RUN_DIR [RUN_DIR ...] [--points 256]

Each RUN_DIR is a reslab training run (for example the degradation experiment's
``OUT/degradation/runs/resnet56-s0``).  The net "at init" is built from the run's own
config, seeded with the run's seed (a fresh draw: not necessarily the run's exact initial weights); "trained" is the run's saved model (``reslab.load_model``).
Both are probed on the same seeded batch of validation-shaped N(0, 1) inputs, and one
Markdown table row per net and state is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import reslab  # noqa: E402
from reslab.data.registry import get_info  # noqa: E402


def _row(name: str, state: str, r) -> str:
    g, s = r.gradients, r.shattering
    p, a = g["params"], g["outputs"]
    lag1 = "n/a" if s["lag1"] is None else f"{s['lag1']:.2f}"
    return (f"| {name} | {state} | {p['first_over_last']:.3g} | {a['first_over_last']:.3g} | {lag1} | "
            f"{'; '.join(r.findings) or 'healthy'} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--points", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| net | state | param-grad first/last | dL/dh first/last | lag-1 of df/dt | findings |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        loaded = reslab.load_model(run)
        cfg = loaded.config
        info = get_info(cfg.dataset)
        torch.manual_seed(0)
        x = torch.randn(32, info.shape[0], *info.shape[1:])
        torch.manual_seed(cfg.seed)
        init = reslab.create_model(cfg.model, num_classes=info.num_classes, in_channels=info.shape[0],
                                   width=cfg.width)
        name = f"{cfg.model} (seed {cfg.seed})"
        print(_row(name, "at init", reslab.probe(init, x, points=args.points, name=name)))
        print(_row(name, f"trained, {loaded.iteration} it", reslab.probe(loaded.model, x, points=args.points,
                                                                         name=name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
