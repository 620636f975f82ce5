"""GPU training speed: He et al.'s 64k-iteration ResNet-20 schedule through reslab's trainer.

    PYTHONPATH=src python benchmarks/gpu_train.py [--budget 440] [--data-dir data/fashion-mnist] [--json F]

(``benchmarks/gpu.sh`` runs it with the right environment.)  In one process, on one GPU:

1. two short eager fp32 baselines, each ``--baseline-iters`` iterations (default 2000),
   extrapolated to 64k iterations from their steady-state images/s:
   a. reslab's trainer with amp off, NCHW, no compile (the same device-resident loader);
   b. the reference pipeline of ``benchmarks/reference_pipeline.py`` (DataLoader with 2
      workers, per-sample transforms on the CPU, ``.to(device)`` each step);
2. the he2016 recipe (64k iterations, batch 128, lr 0.1 /10 at 32k and 48k, validation
   and a checkpoint every 1000 iterations) with the dataset on the GPU, bf16 autocast,
   channels_last and torch.compile: once on CIFAR-shaped synthetic data, once on
   Fashion-MNIST zero-padded to 32x32 (skipped, and said so, if ``--data-dir`` is absent).

Targets: 64k iterations in <= 60 s; >= 3x the eager baseline.  A run that would overrun
its share of ``--budget`` seconds is stopped by SIGINT (the trainer checkpoints and
returns early); its 64k time is then extrapolated and marked as such.  Results are written
to ``--json`` after every run, so a run cut short still leaves the earlier ones.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ITERS = 64_000
BATCH = 128


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def steady_rate(run_dir: Path) -> float | None:
    """Median images/s of the metrics windows, skipping the first (compile, warm-up)."""
    from reslab.training.metrics import read_metrics

    rates = [r["images_per_s"] for r in read_metrics(run_dir) if "images_per_s" in r]
    return statistics.median(rates[1:] if len(rates) > 1 else rates) if rates else None


def run_trainer(name: str, overrides: dict, deadline_s: float, root: Path, device: str = "cuda") -> dict:
    """``train()`` with the he2016 recipe + ``overrides``; SIGINT at ``deadline_s`` stops it cleanly."""
    from reslab.training.config import resolve
    from reslab.training.loop import train

    cfg = resolve(recipe_name="he2016", overrides=dict(model="resnet20", device=device, **overrides))
    deadline_hit = threading.Event()

    def stop() -> None:  # SIGINT: the trainer checkpoints at the next iteration and returns
        deadline_hit.set()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(max(1.0, deadline_s), stop)
    timer.daemon = True
    log(f"{name}: {cfg.iterations} iterations, amp {cfg.amp}, channels_last {cfg.channels_last}, "
        f"compile {cfg.compile}, dataset {cfg.dataset}; stop after {deadline_s:.0f} s at most")
    from torch._dynamo.utils import counters

    counters.clear()  # inductor counts here the graphs it left out of CUDA graphs, and why not
    t0 = time.perf_counter()
    timer.start()
    try:
        res = train(cfg, root / name, quiet=True, overwrite=True)  # a rerun replaces the old run
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    if res.interrupted and not deadline_hit.is_set():  # a signal from outside (e.g. gpu.sh's timeout)
        raise SystemExit(f"{name}: stopped by a signal at iteration {res.iterations}")
    rate = steady_rate(root / name)
    out = {"iterations_done": res.iterations, "iterations_planned": cfg.iterations, "interrupted": res.interrupted,
           "wall_s": round(wall, 1), "loop_s": round(res.seconds, 1), "val_error": res.val_error}
    if cfg.compile:
        out["cudagraph_skips"] = int(counters["inductor"]["cudagraph_skips"])
    if rate is None:  # stopped before the first metrics window closed
        log(f"{name}: no complete metrics window: {json.dumps(out)}")
        return out
    out.update(steady_images_per_s=round(rate, 1), steady_64k_s=round(ITERS * BATCH / rate, 1))
    if res.iterations < ITERS:  # the loop's time, scaled to 64k at the steady rate for the rest
        out["loop_64k_s_estimate"] = round(res.seconds + (ITERS - res.iterations) * BATCH / rate, 1)
    log(f"{name}: {json.dumps(out)}")
    return out


def count_host_syncs(iters: int, root: Path, device: str = "cuda") -> dict:
    """Host-device synchronisations of the training loop, counted by CUDA's sync debug mode
    (``torch.cuda.set_sync_debug_mode``) over a short eager bf16 run with a metrics line every
    50 iterations: the loop is meant to sync only there, never per step."""
    import collections
    import warnings

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = run_trainer("sync-check", dict(dataset="synthetic", iterations=iters, log_every=50,
                                                 eval_every=0, ckpt_every=0, amp="bf16", channels_last=True,
                                                 compile=False), 60, root, device)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    where = collections.Counter(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
    done = run["iterations_done"]
    # The total includes setup, the final validation, checkpoint and export, so it is an upper
    # bound for the loop.  Eager path; the compiled runs use the same loop around the graph.
    out = {"iterations": done, "log_lines": done // 50, "syncs": len(syncs),
           "syncs_per_iteration": round(len(syncs) / max(1, done), 3), "top_sites": dict(where.most_common(8))}
    log(f"host syncs: {json.dumps(out)}")
    return out


def run_reference(iters: int, device: str) -> dict:
    sys.path.insert(0, str(HERE))
    from reference_pipeline import window_rates
    from reslab.data import make_synthetic

    images, labels = make_synthetic("train", 10000)
    steps = max(1, iters // 10)
    t0 = time.perf_counter()
    rates = window_rates("resnet20", images, labels, windows=9, steps_per_window=steps, warmup_steps=steps,
                         device=device)
    rate = statistics.median(rates)
    out = {"iterations_done": 10 * steps, "wall_s": round(time.perf_counter() - t0, 1),
           "steady_images_per_s": round(rate, 1), "steady_64k_s": round(ITERS * BATCH / rate, 1)}
    log(f"reference pipeline: {json.dumps(out)}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=440, help="seconds for everything (the device call allows 480)")
    ap.add_argument("--baseline-iters", type=int, default=2000)
    ap.add_argument("--data-dir", default="data/fashion-mnist", help="folder holding the Fashion-MNIST IDX files")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--compile-mode", default="reduce-overhead",
                    help="torch.compile mode (config key compile_mode): default, reduce-overhead (CUDA graphs), ...")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: a smoke test of this script
    ap.add_argument("--iterations", type=int, default=ITERS, help=argparse.SUPPRESS)  # fewer: smoke test
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.device == "cuda" and not torch.cuda.is_available():
        log("no CUDA device: nothing to measure")
        return 2
    dev = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{args.device} (smoke test)"
    R: dict = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "device": dev,
               "compile_mode": args.compile_mode,
               "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
               "cpu_cores": os.cpu_count(), "budget_s": args.budget}
    try:
        R["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                     capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        R["driver"] = "unknown"
    log(f"{dev}, torch {torch.__version__}, CUDA {torch.version.cuda}, driver {R['driver']}, {os.cpu_count()} CPU cores")

    def left() -> float:
        return args.budget - (time.perf_counter() - t_start)

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(R, indent=1) + "\n")

    fmnist = Path(args.data_dir)
    have_fmnist = fmnist.is_dir() and any(fmnist.iterdir())
    # he2016's own eval_every/ckpt_every (1000); a metrics window every 50 iterations.
    fast = dict(amp="bf16", channels_last=True, compile=True, iterations=args.iterations,
                **({"compile_mode": args.compile_mode} if args.compile_mode != "default" else {}),
                log_every=max(1, min(50, args.iterations // 10)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = args.baseline_iters
        R["eager_fp32"] = run_trainer("eager-fp32", dict(dataset="synthetic", iterations=n, amp="off",
                                                        channels_last=False, compile=False,
                                                        log_every=max(1, n // 10)),
                                      min(120, left() * 0.2), root, args.device)
        save()
        try:
            R["reference"] = run_reference(n, args.device)
        except Exception as err:  # the DataLoader path must not cost the main measurement
            R["reference"] = {"error": f"{type(err).__name__}: {err}"}
            log(f"reference pipeline failed: {err}")
        save()
        if args.device == "cuda":
            try:
                R["host_syncs"] = count_host_syncs(300, root)
            except Exception as err:  # a diagnostic: never cost the main measurement
                R["host_syncs"] = {"error": f"{type(err).__name__}: {err}"}
                log(f"host-sync check failed: {err}")
            save()
        runs = [("synthetic", dict(dataset="synthetic"))]
        if have_fmnist:
            runs.append(("fashion-mnist", dict(dataset="fashion-mnist", data_dir=str(fmnist), pad_to=32)))
        else:
            R["fashion-mnist"] = {"skipped": f"{fmnist} not found"}
            log(f"Fashion-MNIST skipped: {fmnist} not found")
        for i, (name, over) in enumerate(runs):
            share = (left() - 15) / (len(runs) - i)  # leave 15 s to report
            try:
                R[name] = run_trainer(f"compiled-bf16-{name}", dict(over, **fast), share, root, args.device)
                R[name]["compile_mode"] = fast.get("compile_mode", "default")
            except Exception as err:  # keep the other run's numbers
                R[name] = {"error": f"{type(err).__name__}: {err}"}
                log(f"compiled-bf16-{name} failed: {type(err).__name__}: {err}")
                if fast.get("compile_mode", "default") != "default" and left() > 60:
                    # CUDA graphs refused this loop: measure plain torch.compile instead (for this
                    # and every later run), and say so
                    fast.pop("compile_mode")
                    R[f"{name}_failed_mode"] = R[name]
                    log(f"retrying {name} with compile_mode=default")
                    try:
                        R[name] = run_trainer(f"compiled-bf16-{name}-default", dict(over, **fast),
                                              (left() - 15) / (len(runs) - i), root, args.device)
                        R[name]["compile_mode"] = "default"
                    except Exception as err2:
                        R[name] = {"error": f"{type(err2).__name__}: {err2}"}
                        log(f"compiled-bf16-{name}-default failed: {type(err2).__name__}: {err2}")
            save()

    base = R["eager_fp32"].get("steady_images_per_s")
    if not base:
        log("the eager baseline produced no rate; see above")
        save()
        return 1
    ref = R["reference"].get("steady_images_per_s")
    log("")
    log(f"{'run':<50} {'iters done':>10} {'loop s':>8} {'64k s (est.)':>12} {'img/s':>9} {'x eager':>8} {'x ref':>7}")
    rows = [("eager fp32, NCHW (reslab trainer)", R["eager_fp32"]), ("reference pipeline (DataLoader)", R["reference"])]
    rows += [(f"bf16+CL+compile {R[k]['compile_mode']}, {k}", R[k]) for k in ("synthetic", "fashion-mnist")
             if "steady_images_per_s" in R[k]]
    for label, r in rows:
        if "steady_images_per_s" not in r:
            continue
        rate = r["steady_images_per_s"]
        est = r.get("loop_64k_s_estimate", r.get("loop_s") if r.get("iterations_done") == ITERS else r["steady_64k_s"])
        log(f"{label:<50} {r['iterations_done']:>10} {r.get('loop_s', r['wall_s']):>8} {est:>12} {rate:>9.0f} "
            f"{rate / base:>7.2f}x {rate / ref if ref else float('nan'):>6.2f}x")
    for k in ("synthetic", "fashion-mnist"):
        r = R[k]
        if "steady_images_per_s" not in r:
            continue
        done = r["iterations_done"] == ITERS
        t = r["loop_s"] if done else r["loop_64k_s_estimate"]
        r["target_60s_met"] = bool(t <= 60)
        r["target_3x_met"] = bool(r["steady_images_per_s"] >= 3 * base)
        log(f"{k}: 64k iterations {'took' if done else 'would take (estimated)'} {t:.0f} s "
            f"(target <= 60 s: {'met' if t <= 60 else 'NOT met'}); {r['steady_images_per_s'] / base:.2f}x the eager "
            f"fp32 baseline (target >= 3x: {'met' if r['target_3x_met'] else 'NOT met'})")
    hs = R.get("host_syncs", {})
    if "syncs" in hs:
        log(f"host-device syncs: {hs['syncs']} in {hs['iterations']} eager iterations with {hs['log_lines']} "
            f"metrics lines ({hs['syncs_per_iteration']} per iteration); sites: {hs['top_sites']}")
    for k in ("synthetic", "fashion-mnist"):
        if "cudagraph_skips" in R.get(k, {}):
            log(f"{k}: compile_mode {R[k]['compile_mode']}, graphs inductor kept out of CUDA graphs: "
                f"{R[k]['cudagraph_skips']} (see the log above for the reason)")
    R["total_s"] = round(time.perf_counter() - t_start, 1)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
