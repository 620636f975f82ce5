"""Banks against separate runs: training speed of K seeds as one grouped net
(:class:`reslab.models.bank.Bank`) against the same K nets trained one after another.

    PYTHONPATH=src .venv/bin/python benchmarks/bank.py [--models resnet20 resnet56] [--widths 0.25 0.5 1]
        [--ks 1 2 4 6 8] [--modes 1t 2t 2p] [--data synthetic|fashion-mnist] [--quick] [--csv FILE]

The same training step in both arms, as reslab's trainers take it: CIFAR ResNet (He et al.
§4.2) on 1 x 28 x 28 images, batch 64 per copy, fp32, channels_last, flush-denormal on, SGD
(lr 0.1, momentum 0.9, weight decay 1e-4), each copy its own seed and its own batches.

* **bank**: one forward/backward/SGD step of the K-copy bank per iteration;
* **separate**: the K nets, each one step, in turn (what K separate runs cost, without their
  start-up).

Per configuration (model, width, K, mode) one fresh process builds both arms from the same
seeds, warms both up, then times them in ABBA order (bank, separate, separate, bank) for
``--repeats`` rounds of ``--steps`` iterations per arm; the machine's speed drifts over
minutes, ABBA cancels a linear drift.  Reported: images/s counting every copy's images
(K x 64 per iteration / seconds) and the same per copy (/ K), medians over the rounds, and
the speed-up: the median over rounds of bank / separate.

Modes: ``1t`` one process with 1 torch thread; ``2t`` one process with 2 threads; ``2p``
two processes at once, each 1 thread (two copies of the whole measurement side by side, as
``reslab degradation`` runs two workers); ``2p`` reports the sum of both processes' images/s
(and the speed-up of each, median).  ``--pin`` pins each ``2p`` process to its own core.

Prints the CPU model and flags, torch version and load first (``harness.log_conditions``),
one line per configuration as it finishes, then a Markdown table (and ``--csv FILE``).
``--quick`` (ResNet-20, width 0.25, K 1 and 4, mode 1t, 2 rounds of 4 steps) takes well
under 2 minutes; the full grid (2 models x 3 widths x 5 K x 3 modes) takes hours and wants
idle cores.  Not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness

BATCH = 64
FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------- in the child process

def _data(kind: str, k: int, batches: int, seed: int):
    """``batches`` batches per copy (each copy its own), normalised 1 x 28 x 28 images."""
    import torch

    g = torch.Generator().manual_seed(seed)
    if kind == "synthetic":
        xs = torch.randn(k, batches * BATCH, 1, 28, 28, generator=g)
        ys = torch.randint(0, 10, (k, batches * BATCH), generator=g)
    else:
        from reslab.data.formats import read_idx_images, read_idx_labels

        images = torch.from_numpy(read_idx_images(FASHION / "train-images-idx3-ubyte.gz")).float().div_(255)
        labels = torch.from_numpy(read_idx_labels(FASHION / "train-labels-idx1-ubyte.gz")).long()
        pick = torch.stack([torch.randperm(len(images), generator=g)[:batches * BATCH] for _ in range(k)])
        xs = ((images[pick] - 0.286) / 0.353).unsqueeze(2)
        ys = labels[pick]
    cl = torch.channels_last
    return [[(xs[c, i * BATCH:(i + 1) * BATCH].contiguous(memory_format=cl), ys[c, i * BATCH:(i + 1) * BATCH])
             for i in range(batches)] for c in range(k)]


def _nets(model: str, width: float, k: int):
    import torch

    from reslab.models import create_model

    nets = []
    for s in range(k):
        torch.manual_seed(s)
        nets.append(create_model(model, num_classes=10, in_channels=1, width=width)
                    .to(memory_format=torch.channels_last).train())
    return nets


def _sgd(params):
    import torch

    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)


def job_compare(model: str, width: float, k: int, steps: int, repeats: int, warmup: int, data: str,
                pin: int | None = None) -> dict:
    """Both arms of one configuration, ABBA; images/s counting every copy's images."""
    import torch
    import torch.nn.functional as F

    from reslab.models.bank import Bank, bank_loss

    if pin is not None and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[pin % len(cpus)]})
    torch.set_flush_denormal(True)
    batches = _data(data, k, 4, seed=1234)
    separate = _nets(model, width, k)
    opts = [_sgd(n.parameters()) for n in separate]
    bank = Bank.bind(_nets(model, width, k)).to(memory_format=torch.channels_last).train()
    bank_opt = _sgd(bank.parameters())
    stacked = [(Bank.stack([batches[c][i][0] for c in range(k)]), torch.stack([batches[c][i][1] for c in range(k)], 1))
               for i in range(len(batches[0]))]

    def bank_steps(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            x, y = stacked[i % len(stacked)]
            loss, _, _ = bank_loss(bank(x), y)
            loss.backward()
            bank_opt.step()
            bank_opt.zero_grad(set_to_none=True)
        return k * BATCH * n / (time.perf_counter() - t0)

    def separate_steps(n: int) -> float:
        t0 = time.perf_counter()
        for net, opt, own in zip(separate, opts, batches):
            for i in range(n):
                x, y = own[i % len(own)]
                F.cross_entropy(net(x), y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        return k * BATCH * n / (time.perf_counter() - t0)

    bank_steps(warmup), separate_steps(warmup)
    rounds = []
    for _ in range(repeats):
        b1, s1, s2, b2 = bank_steps(steps), separate_steps(steps), separate_steps(steps), bank_steps(steps)
        rounds.append({"bank": (b1 + b2) / 2, "separate": (s1 + s2) / 2})
    return {"rounds": rounds, "threads": torch.get_num_threads()}


JOBS = {"compare": job_compare}


# ---------------------------------------------------------------- in the parent

def _launch(spec: dict, threads: int):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(harness.SRC), str(harness.HERE),
                                                        os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--job",
                             json.dumps(dict(spec, threads=threads))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _result(proc) -> dict:
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"a job failed (exit {proc.returncode}):\n{err[-3000:]}")
    return json.loads(lines[-1][7:])


def measure(spec: dict, mode: str, pin: bool) -> dict:
    """One configuration in one mode: a row of the table."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if mode == "2p":
        procs = [_launch(dict(spec, pin=i if pin else None), 1) for i in range(2)]
        results = [_result(p) for p in procs]
    else:
        results = [_result(_launch(spec, 2 if mode == "2t" else 1))]
    per = [{arm: statistics.median(r[arm] for r in res["rounds"]) for arm in ("bank", "separate")}
           for res in results]
    ratios = [statistics.median(r["bank"] / r["separate"] for r in res["rounds"]) for res in results]
    k = spec["k"]
    bank, sep = sum(p["bank"] for p in per), sum(p["separate"] for p in per)
    return {"model": spec["model"], "width": spec["width"], "k": k, "mode": mode,
            "bank_img_s": round(bank, 1), "separate_img_s": round(sep, 1),
            "bank_img_s_per_copy": round(bank / k, 1), "separate_img_s_per_copy": round(sep / k, 1),
            "speedup": round(statistics.median(ratios), 3), "rounds": spec["repeats"],
            "wall_s": round(time.perf_counter() - t0, 1), "load_start": round(load0, 2),
            "load_end": round(os.getloadavg()[0], 2)}


COLUMNS = ("model", "width", "k", "mode", "bank_img_s", "separate_img_s", "bank_img_s_per_copy",
           "separate_img_s_per_copy", "speedup", "rounds", "wall_s", "load_start", "load_end")


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "\n".join("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="+", default=["resnet20", "resnet56"], choices=["resnet20", "resnet56"])
    ap.add_argument("--widths", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 6, 8], help="copies per bank")
    ap.add_argument("--modes", nargs="+", default=["1t", "2t", "2p"], choices=["1t", "2t", "2p"])
    ap.add_argument("--data", default="synthetic", choices=["synthetic", "fashion-mnist"])
    ap.add_argument("--steps", type=int, default=10, help="iterations per arm per ABBA slot")
    ap.add_argument("--repeats", type=int, default=5, help="ABBA rounds; medians over them")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations per arm first")
    ap.add_argument("--pin", action="store_true", help="2p: pin each process to its own core")
    ap.add_argument("--quick", action="store_true",
                    help="resnet20, width 0.25, K 1 and 4, mode 1t, 2 rounds of 4 steps: proves it runs")
    ap.add_argument("--csv", help="also write the rows to this CSV file")
    ap.add_argument("--max-load", type=float, default=None, help="wait while the load average is above this")
    ap.add_argument("--max-wait", type=float, default=900, help="seconds to wait for --max-load at most")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.widths, args.ks, args.modes = ["resnet20"], [0.25], [1, 4], ["1t"]
        args.steps, args.repeats, args.warmup = 4, 2, 2
    bad = [k for k in args.ks if k < 1] + [w for w in args.widths if not w > 0]
    if bad or args.steps < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error(f"need K >= 1, widths > 0, steps >= 1, repeats >= 1, warmup >= 0; got {bad or ''} "
                 f"steps {args.steps}, repeats {args.repeats}, warmup {args.warmup}")
    if args.data == "fashion-mnist" and not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        ap.error(f"--data fashion-mnist: no {FASHION / 'train-images-idx3-ubyte.gz'}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.job:
        import torch

        # before any thread pool starts: threads started later inherit the flush-to-zero state
        torch.set_flush_denormal(True)
        return harness.child(JOBS, {"job": "compare", **json.loads(args.job)})
    log = harness.print_flush
    harness.log_conditions(log, "per mode (1t: 1; 2t: 2; 2p: 1 in each process)", args.max_load or float("inf"),
                           args.max_wait if args.max_load else 0)
    log(f"method    batch {BATCH} per copy, {args.data} 1x28x28, fp32, channels_last, flush-denormal on; per "
        f"configuration one fresh process, {args.warmup} warm-up steps per arm, then {args.repeats} ABBA rounds "
        f"(bank, separate, separate, bank) of {args.steps} steps per slot; medians over rounds")
    rows = []
    for model in args.models:
        for width in args.widths:
            for k in args.ks:
                for mode in args.modes:
                    spec = dict(model=model, width=width, k=k, steps=args.steps, repeats=args.repeats,
                                warmup=args.warmup, data=args.data)
                    rows.append(measure(spec, mode, args.pin))
                    r = rows[-1]
                    log(f"  {model} w{width:g} K={k} {mode}: bank {r['bank_img_s']:.0f} img/s, separate "
                        f"{r['separate_img_s']:.0f} img/s (all copies), speed-up x{r['speedup']:.2f}; "
                        f"{r['wall_s']:.0f} s, load {r['load_start']:.2f}->{r['load_end']:.2f}")
    log("")
    log(table(rows))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        log(f"csv: {args.csv}")


if __name__ == "__main__":
    main()
