"""Training speed on the CPU: reslab's trainer against a typical CIFAR pipeline, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/train_speed.py [--repeats 5] [--json out.json]

Every measurement runs in its own fresh Python process (so thread pools, flush-to-zero
state and peak memory of one cannot leak into the next), one after another, never two at
once.  It reports:

1. throughput (images/s) of ResNet-20 and ResNet-56 at batch 128 on CIFAR-shaped
   synthetic data through ``reslab.training.train`` (amp auto, channels_last; and amp
   forced bf16, and amp off where auto does not already mean off), and of the reference
   pipeline in ``benchmarks/reference_pipeline.py``; the reslab/reference ratio (target
   >= 2.0x).  Each figure is the median of ``--repeats`` timed windows of ``--steps``
   iterations after a warm-up window (pooled over rounds);
2. achieved training FLOP/s (FlopCounterMode's count for one forward+backward step / step
   time) against fp32 and bf16 matmul peaks (2048x2048 torch.mm, median), target >= 50%
   of the bf16 peak;
3. denormals: plain-56 images/s in its first epoch against later epochs (10 iterations per
   epoch), with the trainer's flush-to-zero, without it, and with the OpenMP thread pool
   started before ``train()`` (then only the main thread flushes); target <= 1.2x;
4. peak resident memory (ru_maxrss) of ResNet-56 training on Fashion-MNIST, target <= 1.5 GiB;
   and an ablation: ResNet-20 through the trainer with one reslab setting undone at a time
   (glibc malloc defaults, NCHW, both), each paired with a neighbouring default job;
5. the conditions: CPU, flags, torch, date, and for every job the load average and the CPU
   time *other* processes took while it ran (from /proc/stat), since shared cores make
   OpenMP's spin-waiting threads collapse.

reslab and the reference alternate in ABBA order over ``--rounds`` rounds (this VM's speed
drifts by 10-35% over minutes) and the ratio is the median of the per-round ratios.

About 9-10 minutes on 2 idle Xeon cores.  Not a test; never part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 128
HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "avx512_vnni", "avx512f", "avx2")


# ---------------------------------------------------------------- jobs (each in a child process)

def job_trainer(model: str, amp: str, windows: int, steps: int, dataset: str = "synthetic", **extra) -> dict:
    """reslab's real path: ``train()`` with a window of ``steps`` iterations per metrics line."""
    from reslab.training import train
    from reslab.training.metrics import read_metrics

    cfg = dict(model=model, dataset=dataset, train_subset=4096, val_size=256, batch_size=BATCH,
               iterations=(windows + 1) * steps, log_every=steps, eval_every=0, ckpt_every=0,
               schedule="constant", amp=amp, channels_last=True, compile=False)
    cfg.update(extra)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", quiet=True)
        rates = [r["images_per_s"] for r in read_metrics(Path(tmp) / "run") if "images_per_s" in r]
    return {"warmup": rates[0], "rates": rates[1:]}  # the first window holds the warm-up


def job_reference(model: str, windows: int, steps: int) -> dict:
    sys.path.insert(0, str(HERE))
    from reference_pipeline import window_rates
    from reslab.data import make_synthetic

    images, labels = make_synthetic("train", 10000)
    return {"rates": window_rates(model, images, labels, windows=windows, steps_per_window=steps,
                                  warmup_steps=steps)}


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


def flushed_share() -> float:
    """Share of a 2-thread elementwise op whose denormal inputs were flushed to zero.  MXCSR's
    flush-to-zero bits are per thread: 1.0 means every OpenMP thread flushes, 0.5 (with 2
    threads) only the main one.  The denormals are made from int bits, not by FP arithmetic."""
    import torch

    x = torch.full((1 << 22,), 1 << 20, dtype=torch.int32).view(torch.float32)  # ~1.5e-39
    return float((x * 1.0 == 0).float().mean())


def job_denormal(variant: str, model: str, epochs: int, dataset: str = "synthetic") -> dict:
    """``variant``: "trainer" (torch.set_flush_denormal(True) as train() calls it, before any
    parallel op, so every OpenMP thread inherits it), "off" (set_flush_denormal patched to a
    no-op) or "pool-first" (the OpenMP pool already running when train() flushes: only the
    main thread's MXCSR changes).  A warm-up step at the same shapes runs first so that the
    first epoch's time holds numerics, not oneDNN's kernel creation."""
    import torch
    import torch.nn.functional as F

    import reslab

    if variant == "off":
        torch.set_flush_denormal = lambda on: False
    elif variant == "trainer":
        torch.set_flush_denormal(True)
    channels = 1 if dataset == "fashion-mnist" else 3
    warm = reslab.create_model(model, in_channels=channels).to(memory_format=torch.channels_last)
    x = torch.randn(BATCH, channels, 32, 32).contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        F.cross_entropy(warm(x), torch.zeros(BATCH, dtype=torch.long)).backward()
    del warm
    flushed_before = flushed_share()
    extra = dict(pad_to=32, val_size=256) if dataset == "fashion-mnist" else {}
    res = job_trainer(model, "auto", windows=2 * epochs - 1, steps=5, dataset=dataset, train_subset=1280, **extra)
    rates = [res["warmup"]] + res["rates"]  # two 5-iteration windows per 10-iteration epoch
    per_epoch = [2 / (1 / rates[i] + 1 / rates[i + 1]) for i in range(0, len(rates) - 1, 2)]
    return {"windows": rates, "epochs": per_epoch, "flushed_share_after": flushed_share(),
            "flushed_share_before": flushed_before}


def job_memory(model: str, iterations: int) -> dict:
    res = job_trainer(model, "auto", windows=iterations // 10 - 1, steps=10, dataset="fashion-mnist", pad_to=32,
                      train_subset=None, val_size=None)
    return {"maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rates": res["rates"]}


JOBS = {"trainer": job_trainer, "reference": job_reference, "peaks": job_peaks, "denormal": job_denormal,
        "memory": job_memory}


def child(spec: dict) -> None:
    threads = spec.pop("threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    result = JOBS[spec.pop("job")](**spec)
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the parent: conditions, jobs, report

def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    first = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            first.setdefault(k, v)
    flags = first.get("flags", "").split()
    return {"model": first.get("model name", platform.processor() or "unknown"),
            "family/model": f"{first.get('cpu family', '?')}/{first.get('model', '?')}",
            "cores": os.cpu_count(), "flags": {f: f in flags for f in BF16_FLAGS}}


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    vals = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def run_job(spec: dict, threads: int | None, log) -> dict:
    spec = dict(spec, threads=threads)
    extra_env = spec.pop("env", {})
    load0 = os.getloadavg()[0]
    busy0, total0 = cpu_busy()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
               **extra_env)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--job", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = cpu_busy()
    ours = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    hz = os.sysconf("SC_CLK_TCK")
    # Cores' worth of CPU that other processes (and the hypervisor's steal) took meanwhile.
    others = max(0.0, (busy1 - busy0) / hz - ours) / wall
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"job {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1][7:])
    out.update(wall_s=round(wall, 1), load_start=load0, load_end=os.getloadavg()[0], others_cores=round(others, 2),
               our_cores=round(ours / wall, 2))
    log(f"  {spec['job']:<9} {json.dumps({k: v for k, v in spec.items() if k not in ('job', 'threads')})}"
        f"{' ' + json.dumps(extra_env) if extra_env else ''}: "
        f"{wall:.0f} s, load {load0:.2f}->{out['load_end']:.2f}, other processes {others:.2f} cores, "
        f"ours {out['our_cores']:.2f}")
    return out


def wait_for_quiet(max_load: float, max_wait: float, log) -> float:
    t0 = time.time()
    while os.getloadavg()[0] > max_load and time.time() - t0 < max_wait:
        log(f"  load average {os.getloadavg()[0]:.2f} > {max_load}: waiting 60 s")
        time.sleep(60)
    return os.getloadavg()[0]


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


def pooled(runs: list[dict]) -> dict:
    """One arm's jobs as one: all timed windows pooled, warm-ups listed."""
    return {"rates": [r for j in runs for r in j["rates"]], "warmup": med([j.get("warmup", 0.0) for j in runs]),
            "jobs": runs}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{med(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5, help="timed windows per throughput figure (median)")
    ap.add_argument("--steps", type=int, default=10, help="iterations per timed window")
    ap.add_argument("--rounds", type=int, default=2,
                    help="ABBA rounds of (reslab, reference) per model; the ratio is the median over rounds")
    ap.add_argument("--epochs", type=int, default=3, help="10-iteration epochs per plain-56 denormal run")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads in every job (default: torch's)")
    ap.add_argument("--only", default="throughput,peaks,denormal,memory",
                    help="comma-separated parts to run: throughput, peaks, denormal, memory")
    ap.add_argument("--max-load", type=float, default=1.3, help="wait while the 1-minute load average is above this")
    ap.add_argument("--max-wait", type=float, default=900, help="seconds to wait for --max-load at most")
    ap.add_argument("--json", help="also write every raw figure to this file")
    args = ap.parse_args()
    if args.job:
        return child(json.loads(args.job))

    import torch

    from reslab.training.loop import bf16_supported

    def log(msg: str) -> None:
        print(msg, flush=True)

    parts = set(args.only.split(","))
    cpu = cpu_info()
    log(f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    log(f"machine   {cpu['model']} (family/model {cpu['family/model']}), {cpu['cores']} logical cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB RAM")
    log("flags     " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu['flags'].items()))
    log(f"software  torch {torch.__version__} (ATen CPU capability {torch._C._get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads, jobs use {args.threads or 'the default'}), python {platform.python_version()}")
    auto_bf16 = bf16_supported(torch.device("cpu"))
    log(f"amp=auto  resolves to {'bf16 autocast' if auto_bf16 else 'fp32 (no native bf16: oneDNN would emulate it)'}")
    load = wait_for_quiet(args.max_load, args.max_wait, log)
    log(f"load      {load:.2f} (1-minute average) at start; {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    log(f"method    batch {BATCH}; median of {args.repeats} windows of {args.steps} iterations after a warm-up window")
    log("jobs (each a fresh process):")
    t_start = time.perf_counter()
    R: dict = {"cpu": cpu, "torch": torch.__version__, "args": vars(args), "amp_auto_bf16": auto_bf16}
    w, s = args.repeats, args.steps
    models = ("resnet20", "resnet56")
    amps = ["auto", "bf16"] + (["off"] if auto_bf16 else [])
    R["jobs"] = []

    def job(**spec) -> dict:
        R["jobs"].append(run_job(spec, args.threads, log))
        return R["jobs"][-1]

    if "peaks" in parts:
        R["peaks"] = [job(job="peaks", n=2048, repeats=max(5, w))]
    if "throughput" in parts:
        # This VM's speed drifts by 10-35% over minutes (the matmul peak too), so reslab and the
        # reference alternate in ABBA order over --rounds rounds, and the ratio is the median of
        # the per-round ratios.  bf16 (emulated, slow) runs once with half-length windows.
        R["trainer"], R["reference"], R["rounds"], R["ablation"] = {}, {}, {}, {}
        for m in models:
            arms: dict = {"auto": [], "reference": []}
            for r in range(args.rounds):
                for arm in (("auto", "reference") if r % 2 == 0 else ("reference", "auto")):
                    if arm == "reference":
                        arms[arm].append(job(job="reference", model=m, windows=w, steps=s))
                    else:
                        arms[arm].append(job(job="trainer", model=m, amp="auto", windows=w, steps=s))
            R["rounds"][m] = [med(a["rates"]) / med(b["rates"]) for a, b in zip(arms["auto"], arms["reference"])]
            R["trainer"][m] = {"auto": pooled(arms["auto"])}
            R["reference"][m] = pooled(arms["reference"])
            for a in amps[1:]:
                R["trainer"][m][a] = job(job="trainer", model=m, amp=a, windows=w, steps=max(1, s // 2))
        # Where the gain comes from (ResNet-20): one reslab setting undone at a time, each arm
        # paired with a neighbouring default job (alternating order) so drift cancels.
        arms = {"glibc malloc defaults (RESLAB_MALLOC=system)": dict(env={"RESLAB_MALLOC": "system"}),
                "NCHW (channels_last=False)": dict(channels_last=False),
                "both undone": dict(channels_last=False, env={"RESLAB_MALLOC": "system"})}
        for i, (name, over) in enumerate(arms.items()):
            pair = {}
            for which in (("default", "arm") if i % 2 == 0 else ("arm", "default")):
                pair[which] = job(job="trainer", model="resnet20", amp="auto", windows=w, steps=s,
                                  **(over if which == "arm" else {}))
            R["ablation"][name] = dict(pair["arm"], default_rates=pair["default"]["rates"],
                                       ratio=med(pair["arm"]["rates"]) / med(pair["default"]["rates"]))
    if "denormal" in parts:
        R["denormal"] = {"trainer": [], "off": [], "pool-first": []}
        for v in ("trainer", "off", "trainer", "off", "pool-first"):  # A/B twice: window noise is ~10%
            R["denormal"][v].append(job(job="denormal", variant=v, model="plain56", epochs=args.epochs))
    if "memory" in parts:
        R["memory"] = job(job="memory", model="resnet56", iterations=30)
    if "peaks" in parts:
        R["peaks"].append(job(job="peaks", n=2048, repeats=max(5, w)))
    R["wall_s"] = round(time.perf_counter() - t_start, 1)
    R["load_end"] = os.getloadavg()
    report(R, log)
    if args.json:
        Path(args.json).write_text(json.dumps(R, indent=1) + "\n")


def report(R: dict, log) -> None:
    jobs = R["jobs"]
    log("")
    log(f"total {R['wall_s']:.0f} s; load average at end {' '.join(f'{x:.2f}' for x in R['load_end'])}; "
        f"other processes took at most {max(j['others_cores'] for j in jobs):.2f} cores during any job")
    if "trainer" in R:
        log("")
        log("| images/s, batch 128, median of windows | ResNet-20 | ResNet-56 |")
        log("|---|---:|---:|")
        for amp in R["trainer"]["resnet20"]:
            label = {"auto": "reslab train(), amp auto (default), channels_last",
                     "bf16": "reslab train(), amp bf16 forced, channels_last (5-iteration windows)",
                     "off": "reslab train(), amp off, channels_last"}[amp]
            log(f"| {label} | " + " | ".join(f"{med(R['trainer'][m][amp]['rates']):.1f}" for m in R["trainer"]) + " |")
        log("| reference: DataLoader(2 workers) + eager fp32 NCHW | "
            + " | ".join(f"{med(R['reference'][m]['rates']):.1f}" for m in R["reference"]) + " |")
        ratio = {m: med(R["rounds"][m]) for m in R["trainer"]}
        log("| **ratio reslab (default) / reference**, median of per-round ratios (target >= 2.0x) | "
            + " | ".join(f"**{ratio[m]:.2f}x**" for m in ratio) + " |")
        log("| per-round ratios (ABBA order) | "
            + " | ".join(", ".join(f"{x:.2f}" for x in R["rounds"][m]) for m in ratio) + " |")
        for m in R["trainer"]:
            for amp, v in R["trainer"][m].items():
                log(f"  {m} amp={amp}: {spread(v['rates'])}; warm-up window {v['warmup']:.1f}")
            log(f"  {m} reference: {spread(R['reference'][m]['rates'])}")
        log(f"  ResNet-20 target >= 2.0x: {'met' if ratio['resnet20'] >= 2 else 'NOT met'} ({ratio['resnet20']:.2f}x); "
            f"ResNet-56: {'met' if ratio['resnet56'] >= 2 else 'NOT met'} ({ratio['resnet56']:.2f}x)")
        if R.get("ablation"):
            log("")
            log("| ResNet-20, one reslab setting undone | images/s | reslab default, neighbouring job | ratio |")
            log("|---|---:|---:|---:|")
            for name, v in R["ablation"].items():
                log(f"| {name} | {med(v['rates']):.1f} | {med(v['default_rates']):.1f} | {v['ratio']:.2f}x |")
    if "peaks" in R:
        p = {k: max(q[k] for q in R["peaks"]) for k in ("fp32", "bf16")}  # the higher of start and end
        log("")
        log(f"matmul peak (2048x2048 torch.mm, median; the higher of the run's start and end): fp32 "
            f"{p['fp32'] / 1e9:.1f} GFLOP/s, bf16 {p['bf16'] / 1e9:.1f} GFLOP/s (start/end: "
            + ", ".join(f"{k} " + "/".join(f"{q[k] / 1e9:.0f}" for q in R["peaks"]) for k in ("fp32", "bf16")) + ")")
        if "trainer" in R:
            log("| training FLOP/s (forward+backward FLOPs / step time) | FLOPs/step | GFLOP/s | % fp32 peak | % bf16 peak |")
            log("|---|---:|---:|---:|---:|")
            for m in R["trainer"]:
                f = train_step_flops(m)
                for amp, v in R["trainer"][m].items():
                    achieved = f * med(v["rates"]) / BATCH
                    log(f"| {m}, amp {amp} | {f / 1e9:.1f} G | {achieved / 1e9:.1f} | {100 * achieved / p['fp32']:.0f}% "
                        f"| {100 * achieved / p['bf16']:.0f}% |")
    if "denormal" in R:
        log("")
        log("| plain-56, images/s per 10-iteration epoch | epoch 1 | later epochs (median) | slowdown (target <= 1.2x) "
            "| share of a parallel op flushed |")
        log("|---|---:|---:|---:|---:|")
        names = {"trainer": "train() as is (flush-to-zero on every thread)", "off": "flush-to-zero off (patched no-op)",
                 "pool-first": "OpenMP pool started before train()"}
        for v, runs in R["denormal"].items():
            for d in runs:
                first, later = d["epochs"][0], med(d["epochs"][1:])
                log(f"| {names[v]} | {first:.1f} | {later:.1f} | {later / first:.2f}x | {d['flushed_share_after']:.2f} |")
    if "memory" in R:
        gib = R["memory"]["maxrss_bytes"] / 2 ** 30
        log("")
        log(f"peak RSS, ResNet-56 on Fashion-MNIST (28->32), 30 iterations + validation: {gib:.2f} GiB "
            f"(target <= 1.5 GiB: {'met' if gib <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
