"""How long `reslab reproduce` takes, per experiment and in total.

    PYTHONPATH=src .venv/bin/python benchmarks/reproduce.py [--scale quick] [--out DIR]

Runs the real command once in a subprocess (each experiment records its own duration in
its results.json), then prints the machine, torch version, load average and the times.
Its target: at most 10 minutes at quick scale on a 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reslab.experiments import REPRODUCE  # noqa: E402
from reslab.experiments.base import conditions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="quick", choices=["quick", "medium", "full"])
    ap.add_argument("--out", default=None, help="results directory (default: a temporary one)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="reslab-reproduce-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reslab", "reproduce", "--quiet", "--scale", args.scale,
                           "--out", str(out)], env=env)
    total = time.perf_counter() - t0
    if proc.returncode:
        print(f"reslab reproduce failed with exit code {proc.returncode}")
        return proc.returncode
    c = conditions()
    print(f"\nmachine: {c['cpu']} ({' '.join(c['cpu_flags'])}), {c['cores']} cores, torch {c['torch']}, {c['date']}")
    print(f"load average before: {load_before[0]:.2f}, after: {os.getloadavg()[0]:.2f}")
    for name in REPRODUCE:
        res = json.loads((out / name / "results.json").read_text())
        failed = [p["name"] for p in res["verdict"]["parts"] if not p["passed"]]
        print(f"  {name:<12} {res['seconds']:7.1f} s   {res['verdict']['outcome']}"
              + (f" (not shown: {'; '.join(failed)})" if failed else ""))
    print(f"  {'total':<12} {total:7.1f} s   (wall clock, including start-up and the report; budget 600 s)")
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
