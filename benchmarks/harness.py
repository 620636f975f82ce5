"""The harness every CPU training benchmark here shares.

- every measurement (a *job*) runs in its own fresh Python process (:func:`run_job`), one at a
  time, so that thread pools, flush-to-zero state and peak memory of one cannot leak into the
  next; a benchmark module lists its jobs in ``JOBS`` and hands ``--job SPEC`` to :func:`child`;
- for every job, the load average and the CPU time *other* processes took while it ran (from
  /proc/stat), since shared cores make OpenMP's spin-waiting threads collapse;
- :func:`wait_for_quiet` waits for a low load average; :func:`log_conditions` prints the CPU,
  flags, torch version, date and load;
- :func:`job_trainer`, the job most benchmarks time: reslab's real ``train()`` path, read back
  from its own ``metrics.jsonl`` windows.

Arms that are compared alternate in ABBA order (this VM's speed drifts by 10-35% over
minutes); :func:`med`, :func:`pooled` and :func:`spread` summarise them.
"""

from __future__ import annotations

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


def child(jobs: dict, spec: dict) -> None:
    """In the child process: run one job, print its result as one ``RESULT {json}`` line."""
    threads = spec.pop("threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    result = jobs[spec.pop("job")](**spec)
    print("RESULT " + json.dumps(result), flush=True)


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


def run_job(script: str | Path, spec: dict, threads: int | None, log) -> dict:
    """Run ``spec`` (``job`` plus its keyword arguments; ``env``: extra environment) in a
    fresh ``python script --job SPEC``; its result, with the wall time and the load."""
    spec = dict(spec, threads=threads)
    extra_env = spec.pop("env", {})
    load0 = os.getloadavg()[0]
    busy0, total0 = cpu_busy()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), str(HERE), os.environ.get("PYTHONPATH")])),
               **extra_env)
    proc = subprocess.run([sys.executable, str(Path(script).resolve()), "--job", json.dumps(spec)],
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


class Jobs:
    """Runs one benchmark's jobs and keeps every result in ``R["jobs"]``."""

    def __init__(self, script: str | Path, R: dict, threads: int | None, log):
        self.script, self.R, self.threads, self.log = script, R, threads, log
        R.setdefault("jobs", [])

    def __call__(self, **spec) -> dict:
        self.R["jobs"].append(run_job(self.script, spec, self.threads, self.log))
        return self.R["jobs"][-1]


def wait_for_quiet(max_load: float, max_wait: float, log) -> float:
    t0 = time.time()
    while os.getloadavg()[0] > max_load and time.time() - t0 < max_wait:
        log(f"  load average {os.getloadavg()[0]:.2f} > {max_load}: waiting 60 s")
        time.sleep(60)
    return os.getloadavg()[0]


def log_conditions(log, threads: int | None, max_load: float, max_wait: float) -> dict:
    """Print the machine, software and load; wait for a quiet machine; return the CPU info."""
    import torch

    cpu = cpu_info()
    log(f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    log(f"machine   {cpu['model']} (family/model {cpu['family/model']}), {cpu['cores']} logical cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB RAM")
    log("flags     " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu['flags'].items()))
    log(f"software  torch {torch.__version__} (ATen CPU capability {torch._C._get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads, jobs use {threads or 'the default'}), python {platform.python_version()}")
    load = wait_for_quiet(max_load, max_wait, log)
    log(f"load      {load:.2f} (1-minute average) at start; {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return cpu


def add_common_args(ap) -> None:
    """The flags every benchmark here takes."""
    import argparse

    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads in every job (default: torch's)")
    ap.add_argument("--max-load", type=float, default=1.3, help="wait while the 1-minute load average is above this")
    ap.add_argument("--max-wait", type=float, default=900, help="seconds to wait for --max-load at most")
    ap.add_argument("--json", help="also write every raw figure to this file")


def standalone(script: str, jobs: dict, run, report, ap) -> None:
    """``main()`` of a benchmark module: a child job, or conditions, ``run(args, R, log)`` (which
    returns its figures; its jobs go to ``R["jobs"]``) and ``report(R, log)``."""
    args = ap.parse_args()
    if args.job:
        return child(jobs, json.loads(args.job))
    log = print_flush
    R: dict = {"cpu": log_conditions(log, args.threads, args.max_load, args.max_wait), "args": vars(args)}
    log("jobs (each a fresh process):")
    t0 = time.perf_counter()
    R.update(run(args, R, log))
    R["wall_s"], R["load_end"] = round(time.perf_counter() - t0, 1), os.getloadavg()
    log_totals(R, log)
    report(R, log)
    if args.json:
        Path(args.json).write_text(json.dumps(R, indent=1) + "\n")


def print_flush(msg: str) -> None:
    print(msg, flush=True)


def log_totals(R: dict, log) -> None:
    jobs = R["jobs"]
    log("")
    log(f"total {R['wall_s']:.0f} s; load average at end {' '.join(f'{x:.2f}' for x in R['load_end'])}; "
        f"other processes took at most {max((j['others_cores'] for j in jobs), default=0):.2f} cores during any job")


def pooled(runs: list[dict]) -> dict:
    """One arm's jobs as one: all timed windows pooled, warm-ups listed."""
    return {"rates": [r for j in runs for r in j["rates"]], "warmup": med([j.get("warmup", 0.0) for j in runs]),
            "jobs": runs}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{med(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})"
