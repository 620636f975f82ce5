"""Training many small nets for an experiment: every (kind, depth, seed) of a config, as
banks of seeds (:mod:`reslab.training.bank`) spread over worker processes.

The experiments that train (degradation, the training half of looks-linear) describe their
nets with a config that has ``kinds``, ``depths``, ``seeds`` and the training budget; this
module turns that into run directories ``OUT/runs/NAME-sSEED`` and per-seed results.

Narrow nets on a CPU are bound by per-operator overhead, which a second thread does not
share out but a second process does, and which a bank pays once for K seeds.  So the
seeds of one net train as one bank (``bank_size`` seeds at a time), and ``workers``
processes with ``threads`` threads each take the banks, largest first.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from reslab.experiments import base, stats

KINDS = ("plain", "resnet")             # the nets of He et al.'s claim
EXTRA_KINDS = ("plain-ll",)             # plain nets with looks-linear init (the looks-linear experiment)
CIFAR_NAMED_DEPTHS = (20, 32, 44, 56, 110, 1202)  # registered as resnetN / plainN


def net_name(kind: str, depth: int) -> str:
    return f"{kind}{depth}" if depth in CIFAR_NAMED_DEPTHS else f"cifar-{kind}{depth}"


def train_config(cfg, kind: str, depth: int, seed: int, data_dir: str | None):
    """The :class:`~reslab.training.config.TrainConfig` of one net and seed of ``cfg``."""
    from reslab.training.config import resolve

    model = net_name("plain" if kind == "plain-ll" else kind, depth)
    over = dict(model=model, init="looks-linear" if kind == "plain-ll" else "he_normal", dataset=cfg.dataset,
                data_dir=data_dir, seed=seed, amp=cfg.amp, device=cfg.device, eval_test=True,
                eval_every=cfg.eval_every, log_every=cfg.log_every, iterations=cfg.iterations, ckpt_every=0,
                width=cfg.width, batch_size=cfg.batch_size, val_size=cfg.val_size, test_subset=cfg.test_subset)
    if cfg.recipe == "quick":
        over.update(train_subset=cfg.train_subset, lr=cfg.lr, schedule="onecycle")
    return resolve(recipe_name=cfg.recipe, overrides=over)


def run_dir(out_dir: Path, kind: str, depth: int, seed: int) -> Path:
    return Path(out_dir) / "runs" / f"{net_name(kind, depth)}-s{seed}"


def summarise_run(cfg, res, run: Path, seed: int) -> dict[str, Any]:
    """One trained net's curves and final errors; the final training error is the mean over
    the last ``train_error_window`` iterations."""
    from reslab.training.metrics import read_metrics

    rows = read_metrics(run)
    train_rows = [r for r in rows if "train_error" in r]
    tail = [r for r in train_rows if r["iteration"] > cfg.iterations - cfg.train_error_window] or train_rows[-1:]
    evals = [r for r in rows if "test_error" in r]
    return {
        "seed": seed,
        "final_train_error": sum(r["train_error"] for r in tail) / len(tail),
        "final_val_error": res.val_error, "final_test_error": res.test_error,
        "images_per_s": res.images_per_s, "seconds": res.seconds,
        "curve": {"iteration": [r["iteration"] for r in train_rows],
                  "train_error": [r["train_error"] for r in train_rows],
                  "eval_iteration": [r["iteration"] for r in evals],
                  "val_error": [r.get("val_error") for r in evals],
                  "test_error": [r["test_error"] for r in evals]},
    }


def train_group(cfg, out_dir: str | Path, data_dir: str | None, kind: str, depth: int,
                seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """Train the seeds ``seeds`` of one net from scratch (as one bank where it pays)."""
    from reslab.training.bank import train_seeds

    runs = [run_dir(Path(out_dir), kind, depth, s) for s in seeds]
    for r in runs:  # a rerun of the experiment trains every net afresh
        if r.exists():
            shutil.rmtree(r)
    tcfg = train_config(cfg, kind, depth, seeds[0], data_dir)
    # one line per log step and the reason for any fallback, on the reslab logger (a worker's log file)
    results = train_seeds(tcfg, list(seeds), runs, bank=cfg.bank, quiet=True,
                          say=logging.getLogger("reslab.train").info)
    for res in results:
        if res.interrupted:
            raise KeyboardInterrupt(f"{net_name(kind, depth)} interrupted at iteration {res.iterations}")
    return [summarise_run(cfg, res, r, s) for res, r, s in zip(results, runs, seeds)]


def _in_worker(cfg, out_dir: str, data_dir: str | None, kind: str, depth: int, seeds: tuple[int, ...]):
    """:func:`train_group` in a pool process with ``cfg.threads`` torch threads; the trainer's
    log lines go to ``runs/NAME-sS0-S1.log`` instead of interleaving on the terminal."""
    import os
    import sys

    import torch

    torch.set_num_threads(cfg.threads or 1)
    log = Path(out_dir) / "runs" / f"{net_name(kind, depth)}-s{'-'.join(map(str, seeds))}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        sys.stdout.flush(), sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        handler = logging.StreamHandler(sys.stderr)  # a spawned process has no handler of the CLI's
        logging.getLogger("reslab").addHandler(handler)
        logging.getLogger("reslab").setLevel(logging.INFO)
        try:
            return train_group(cfg, out_dir, data_dir, kind, depth, seeds)
        finally:
            logging.getLogger("reslab").removeHandler(handler)
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def jobs_of(cfg) -> list[tuple[str, int, tuple[int, ...]]]:
    """(kind, depth, seeds) per bank, deepest nets first (they take longest: a pool then
    ends with the short jobs, and both workers finish together)."""
    size = cfg.bank_size or cfg.seeds
    groups = [tuple(range(i, min(i + size, cfg.seeds))) for i in range(0, cfg.seeds, size)]
    jobs = [(kind, depth, g) for g in groups for kind in cfg.kinds for depth in cfg.depths]
    return sorted(jobs, key=lambda j: -j[1])


def train_all(cfg, ctx: base.Context) -> dict[str, dict]:
    """Every (kind, depth, seed) net of ``cfg``: ``{net name: {kind, depth, runs: [per seed],
    train_error/val_error/test_error: summaries}}``."""
    jobs = jobs_of(cfg)
    done: dict[tuple, dict] = {}
    total = cfg.seeds * len(cfg.kinds) * len(cfg.depths)

    def finished(job, rows):
        kind, depth, _ = job
        for r in rows:
            done[(kind, depth, r["seed"])] = r
        errs = ", ".join(f"{r['final_train_error']:.3f}" for r in rows)
        ctx.say(f"{len(done)}/{total} nets: {net_name(kind, depth)} seeds {list(job[2])}: train error {errs} "
                f"({rows[0]['seconds']:.0f} s{' as one bank' if cfg.bank and len(rows) > 1 else ''})")

    ctx.say(f"training {total} nets ({len(jobs)} banks of up to {cfg.bank_size or cfg.seeds} seeds), "
            f"{cfg.workers} process(es) x {cfg.threads or 1} thread(s); logs in {ctx.out_dir / 'runs'}")
    if cfg.workers == 1:
        for job in jobs:
            finished(job, train_group(cfg, ctx.out_dir, ctx.data_dir, *job))
    else:
        _pool(cfg, ctx, jobs, finished)
    nets: dict[str, dict] = {}
    for kind in cfg.kinds:
        for depth in cfg.depths:
            runs = [done[(kind, depth, s)] for s in range(cfg.seeds)]
            n = nets[net_name(kind, depth)] = {"kind": kind, "depth": depth, "runs": runs}
            for key in ("final_train_error", "final_val_error", "final_test_error"):
                n[key.removeprefix("final_")] = stats.summary([r[key] for r in runs])
    return nets


def _pool(cfg, ctx: base.Context, jobs, finished) -> None:
    import concurrent.futures as cf
    import multiprocessing

    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(_in_worker, cfg, str(ctx.out_dir), ctx.data_dir, *job): job for job in jobs}
        for fut in cf.as_completed(futures):
            finished(futures[fut], fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def epochs(cfg) -> float | None:
    return cfg.iterations * cfg.batch_size / cfg.train_subset if cfg.train_subset else None


def budget_text(cfg) -> str:
    e = epochs(cfg)
    return (f"{cfg.iterations:,} iterations of {cfg.batch_size} images" + (f" ({e:.0f} epochs)" if e else "")
            + f", recipe {cfg.recipe}, width {cfg.width:g}")


def compute_text(cfg) -> str:
    """Processes x threads, banks and precision: what the report names beside the verdict."""
    size = cfg.bank_size or cfg.seeds
    banks = f"seeds trained as banks of up to {size}" if cfg.bank and size > 1 else "one net per run"
    return (f"{cfg.workers} process(es) x {cfg.threads or 1} torch thread(s), {banks}, "
            f"amp={cfg.amp} ({'fp32 in banks' if cfg.bank else 'bf16 where the CPU has it natively'})")

