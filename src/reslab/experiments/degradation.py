"""The degradation problem (He et al. 2016, arXiv 1512.03385, §4.2, Figs. 1 and 6, Table 6).

Plain and residual nets of two or more depths train on the same data, with the same
budget, recipe and seeds; a plain net and its ResNet twin differ only by the skips.
He et al. state two things, and the verdict judges them as separate parts:

* **deeper plain nets train worse**: plain-56 ends with *higher training error* than
  plain-20 (Fig. 6 left), and higher test error too (Fig. 1), so it is not overfitting;
* **deeper ResNets train better**: with residual learning the order reverses, and
  ResNet-56 reaches *lower* training error than ResNet-20 (Fig. 6 middle; Table 6 for
  the test error over 20 > 32 > 44 > 56 > 110).

Each criterion is fixed here, before any run: a difference of mean final training
error over seeds whose 95% confidence interval (Student's t, :mod:`reslab.experiments.stats`)
lies entirely on the paper's side of zero.  With one seed there is no interval, and the
difference must exceed ``min_gap`` instead.  With more than two depths, the order over
all depths is a further part for each kind (means only).

Scales (``SCALES``): the ResNet half appears only near convergence.  At a few epochs the
ResNet-56 minus ResNet-20 difference is within seed noise (its sign flipped between two
seeds in a 300-iteration run), so a short budget cannot show it and the quick verdict
then says "partly".  ``medium`` is the budget that showed both halves on a 2-core CPU
(benchmarks/RESULTS.md); ``full`` is the paper's CIFAR-10 recipe.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from reslab.errors import ReslabError
from reslab.experiments import base, stats
from reslab.models.resnet import is_cifar_depth

CLAIM = ("He et al. 2016 (§4.2, Figs. 1 and 6): a deeper plain net has higher training error than a "
         "shallower one (56 vs 20 layers), and higher test error, so it is not overfitting: the degradation "
         "problem. With residual learning the situation is reversed: the deeper ResNet has lower training "
         "error than the shallower one.")

# He et al. Table 6, CIFAR-10 test error (%), he2016 recipe; plain nets are shown only as curves (Fig. 6).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}

KINDS = ("plain", "resnet")             # the kinds the claim is about
EXTRA_KINDS = ("plain-ll",)             # plain nets with looks-linear init (reslab looks-linear trains them here)
RECIPES = ("quick", "he2016")

# Presets per scale; config_for() starts from these.  Every setting is in Config below.
SCALES: dict[str, dict[str, Any]] = {
    # Minutes on 2 cores: 3 seeds x 4 nets of 600 iterations at batch 64 (19 epochs of 2,048 images),
    # two nets at a time with one thread each (1.44x the throughput of one net on two threads).
    "quick": dict(seeds=3, width=0.25, train_subset=2048, batch_size=64, iterations=600, eval_every=200,
                  log_every=20, train_error_window=60, workers=2, threads=1),
    # Tens of minutes on 2 cores: 600 iterations at batch 128 (37 epochs of 2,048), nearer convergence.
    "medium": dict(seeds=3, width=0.25, train_subset=2048, batch_size=128, iterations=600, eval_every=200,
                   log_every=20, train_error_window=60, workers=2, threads=1),
    # He et al. §4.2 on CIFAR-10: 64k iterations per net; needs the dataset and, in practice, a GPU.
    "full": dict(seeds=1, depths=(20, 32, 44, 56, 110), dataset="cifar10", recipe="he2016", width=1.0,
                 train_subset=None, val_size=5000, test_subset=None, batch_size=128, iterations=64_000,
                 eval_every=1000, log_every=200, train_error_window=1000),
}


@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    scales: ClassVar[tuple[str, ...]] = tuple(SCALES)

    seeds: int = 3
    depths: tuple[int, ...] = (20, 56)  # each 6n+2; the first and last are compared
    kinds: tuple[str, ...] = KINDS
    dataset: str = "fashion-mnist"
    recipe: str = "quick"               # quick: one-cycle lr over `iterations`; he2016: §4.2 exactly
    width: float = 0.25                 # multiplier of the paper's 16/32/64 filters (1 = paper)
    batch_size: int = 64                # images per iteration
    train_subset: int | None = 2048     # training images used (None: the whole training split)
    val_size: int | None = 1000         # images held out of the training split for validation
    test_subset: int | None = 2000      # test images behind each point of the test curve
    iterations: int = 600               # per net (iterations, not epochs)
    lr: float = 0.1                     # peak lr of the one-cycle schedule, per batch_size images
    eval_every: int = 200               # iterations between val/test points on the curves
    log_every: int = 20                 # iterations averaged per logged training error
    amp: str = "auto"
    device: str = "auto"
    train_error_window: int = 60        # final training error: mean over the last N iterations
    min_gap: float = 0.01               # one seed only: the difference a part needs (no interval)
    workers: int = 1                    # nets trained at once, each in its own process with `threads` threads

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        for d in self.depths:
            if not is_cifar_depth(d):
                raise ReslabError(f"depths: {d} is not 6n+2 (valid: 8, 14, 20, 32, 44, 56, 110, ...)")
        if not self.depths or len(set(self.depths)) != len(self.depths):
            raise ReslabError(f"depths: need one or more different depths, got {self.depths}")
        bad = [k for k in self.kinds if k not in KINDS + EXTRA_KINDS]
        if bad or not self.kinds:
            raise ReslabError(f"kinds: unknown {bad}; valid: {', '.join(KINDS + EXTRA_KINDS)}")
        if self.recipe not in RECIPES:
            raise ReslabError(f"recipe: unknown {self.recipe!r}; valid: {', '.join(RECIPES)}")
        for name in ("batch_size", "iterations", "log_every", "train_error_window", "workers"):
            if getattr(self, name) < 1:
                raise ReslabError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ReslabError(f"eval_every must be >= 0, got {self.eval_every}")
        if not (self.width > 0 and math.isfinite(self.width)) or not self.lr > 0 or self.min_gap < 0:
            raise ReslabError(f"need width > 0, lr > 0, min_gap >= 0; got {self.width}, {self.lr}, {self.min_gap}")
        if self.train_error_window > self.iterations:
            raise ReslabError(f"train_error_window ({self.train_error_window}) must not exceed iterations "
                              f"({self.iterations})")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "degradation", scale, seeds, overrides)


def net_name(kind: str, depth: int) -> str:
    return f"{kind}{depth}" if depth in PAPER_TEST_ERROR else f"cifar-{kind}{depth}"


def train_config(cfg: Config, kind: str, depth: int, seed: int, data_dir: str | None):
    from reslab.training.config import resolve

    model = net_name("plain" if kind == "plain-ll" else kind, depth)
    over = dict(model=model, init="looks-linear" if kind == "plain-ll" else "he_normal", dataset=cfg.dataset, data_dir=data_dir, seed=seed, amp=cfg.amp,
                device=cfg.device, eval_test=True, eval_every=cfg.eval_every, log_every=cfg.log_every,
                iterations=cfg.iterations, ckpt_every=0, width=cfg.width, batch_size=cfg.batch_size,
                val_size=cfg.val_size, test_subset=cfg.test_subset)
    if cfg.recipe == "quick":
        over.update(train_subset=cfg.train_subset, lr=cfg.lr, schedule="onecycle")
    return resolve(recipe_name=cfg.recipe, overrides=over)


# ---------------------------------------------------------------- measuring

def train_one(cfg: Config, ctx: base.Context, kind: str, depth: int, seed: int) -> dict[str, Any]:
    """Train one net from scratch into ``OUT/degradation/runs/NAME-sSEED``; its curves and final errors."""
    from reslab.training import train
    from reslab.training.metrics import read_metrics

    run_dir = ctx.out_dir / "runs" / f"{net_name(kind, depth)}-s{seed}"
    if run_dir.exists():  # a rerun of the experiment trains every net afresh
        shutil.rmtree(run_dir)
    res = train(train_config(cfg, kind, depth, seed, ctx.data_dir), run_dir, quiet=ctx.quiet)
    if res.interrupted:
        raise KeyboardInterrupt(f"{net_name(kind, depth)} interrupted at iteration {res.iterations}")
    rows = read_metrics(run_dir)
    train_rows = [r for r in rows if "train_error" in r]
    tail = [r for r in train_rows if r["iteration"] > cfg.iterations - cfg.train_error_window] or train_rows[-1:]
    evals = [r for r in rows if "test_error" in r]
    return {
        "seed": seed, "final_train_error": sum(r["train_error"] for r in tail) / len(tail),
        "final_val_error": res.val_error, "final_test_error": res.test_error,
        "images_per_s": res.images_per_s, "seconds": res.seconds,
        "curve": {"iteration": [r["iteration"] for r in train_rows],
                  "train_error": [r["train_error"] for r in train_rows],
                  "eval_iteration": [r["iteration"] for r in evals],
                  "val_error": [r.get("val_error") for r in evals],
                  "test_error": [r["test_error"] for r in evals]},
    }


def _train_in_worker(cfg: Config, out_dir: str, data_dir: str | None, kind: str, depth: int,
                     seed: int) -> dict[str, Any]:
    """:func:`train_one` in a pool process: ``cfg.threads`` torch threads, and the trainer's
    log lines go to ``runs/NAME-sSEED.log`` instead of interleaving on the terminal."""
    import os
    import sys

    import torch

    torch.set_num_threads(cfg.threads or 1)
    log = Path(out_dir) / "runs" / f"{net_name(kind, depth)}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        sys.stdout.flush(), sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        try:
            return train_one(cfg, base.Context(out_dir, quiet=True, data_dir=data_dir), kind, depth, seed)
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    t0 = time.perf_counter()
    nets = train_all(cfg, ctx)
    data = {"nets": nets, "tables": [paper_table(cfg, nets)]}
    epochs = cfg.iterations * cfg.batch_size / cfg.train_subset if cfg.train_subset else None
    scope = {"data": f"{cfg.dataset}" + (f", {cfg.train_subset:,} training images" if cfg.train_subset else ""),
             "budget": f"{cfg.iterations:,} iterations of {cfg.batch_size} images"
                       + (f" ({epochs:.0f} epochs)" if epochs else "") + f", recipe {cfg.recipe}, width {cfg.width:g}",
             "interval": "95% CI over seeds (Student's t)"}
    return base.make_results("degradation", CLAIM, cfg, data, judge(cfg, nets), time.perf_counter() - t0, scope)


def train_all(cfg: Config, ctx: base.Context) -> dict[str, dict]:
    """Every (kind, depth, seed) net of ``cfg``, trained from scratch: ``{net name: {kind, depth,
    runs: [per seed], train_error/val_error/test_error: summaries}}``."""
    # seed-major: a run stopped early has whole seeds of every net
    jobs = [(kind, depth, seed) for seed in range(cfg.seeds) for kind in cfg.kinds for depth in cfg.depths]
    done: dict[tuple, dict] = {}

    def finished(job, r):
        done[job] = r
        ctx.say(f"degradation [{len(done)}/{len(jobs)}]: {net_name(*job[:2])} seed {job[2]}: train error "
                f"{r['final_train_error']:.3f}, test error {r['final_test_error']:.3f}, {r['seconds']:.0f} s")

    if cfg.workers == 1:
        for job in jobs:
            ctx.say(f"degradation: training {net_name(*job[:2])} (seed {job[2]}), {cfg.iterations} iterations")
            finished(job, train_one(cfg, ctx, *job))
    else:
        _run_pool(cfg, ctx, jobs, finished)
    nets: dict[str, dict] = {}
    for job in jobs:  # in job order, whatever order they finished in
        kind, depth, _ = job
        nets.setdefault(net_name(kind, depth), {"kind": kind, "depth": depth, "runs": []})["runs"].append(done[job])
    for n in nets.values():
        for key in ("final_train_error", "final_val_error", "final_test_error"):
            n[key.removeprefix("final_")] = stats.summary([r[key] for r in n["runs"]])
    return nets


def _run_pool(cfg: Config, ctx: base.Context, jobs: list[tuple], finished) -> None:
    """Train ``cfg.workers`` nets at a time in spawned processes.  Narrow nets on a CPU are
    bound by per-operator overhead, which a second thread does not share out but a second
    process does (benchmarks/RESULTS.md)."""
    import concurrent.futures as cf
    import multiprocessing

    ctx.say(f"degradation: {len(jobs)} nets, {cfg.workers} at a time, {cfg.threads or 1} thread(s) each; "
            f"training logs in {ctx.out_dir / 'runs'}")
    pool = cf.ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(_train_in_worker, cfg, str(ctx.out_dir), ctx.data_dir, *job): job for job in jobs}
        for fut in cf.as_completed(futures):
            finished(futures[fut], fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- judging

def errors(nets: dict, kind: str, depth: int, key: str = "final_train_error") -> list[float]:
    """Per-seed final errors of one net (empty if it was not run)."""
    n = nets.get(net_name(kind, depth))
    return [r[key] for r in n["runs"] if r.get(key) is not None] if n else []


def higher(cfg: Config, name: str, what: str, worse: list[float], better: list[float]) -> dict[str, Any]:
    """The part "mean(worse) > mean(better)": the 95% CI of the difference lies above 0
    (one seed: the difference exceeds min_gap)."""
    d = stats.difference(worse, better)
    criterion = (f"{what}: the 95% CI of the difference of means over seeds lies above 0 "
                 f"(with one seed: the difference exceeds {cfg.min_gap:g})")
    if d["mean"] is None:
        return base.part(name, criterion, False, "not run")
    passed = d["lo"] > 0 if d["lo"] is not None else (min(d["n"]) == 1 and d["mean"] > cfg.min_gap)
    observed = (f"{stats.text(stats.summary(worse))} vs {stats.text(stats.summary(better))}; "
                f"difference {stats.text({**d, 'n': min(d['n'])}, '+.3f')}")
    return base.part(name, criterion, passed, observed)


def _ordered(cfg: Config, nets: dict, kind: str, rising: bool) -> dict[str, Any]:
    means = [stats.summary(errors(nets, kind, d))["mean"] for d in cfg.depths]
    word = "rises" if rising else "falls"
    criterion = f"mean final training error over seeds {word} at every step of depths {list(cfg.depths)}"
    ok = None not in means and all((b > a) if rising else (b < a) for a, b in zip(means, means[1:]))
    observed = ", ".join(f"{kind}-{d} {'n/a' if m is None else f'{m:.3f}'}" for d, m in zip(cfg.depths, means))
    return base.part(f"{kind} nets order by depth ({'deeper is worse' if rising else 'deeper is better'})",
                     criterion, ok, observed)


def judge(cfg: Config, nets: dict) -> dict[str, Any]:
    """The claim's parts (module docstring), from per-seed final errors only."""
    if len(cfg.depths) < 2:
        return base.cannot_judge(f"the claim compares two depths; got depths={list(cfg.depths)}")
    missing = [net_name(k, d) for k in KINDS for d in (min(cfg.depths), max(cfg.depths)) if not errors(nets, k, d)]
    if missing:
        return base.cannot_judge(f"nets {missing} were not run (the claim needs plain and ResNet nets "
                                 f"at depths {min(cfg.depths)} and {max(cfg.depths)})")
    lo, hi = min(cfg.depths), max(cfg.depths)
    parts = [
        higher(cfg, f"deeper plain nets train worse (plain-{hi} vs plain-{lo})",
                f"final training error of plain-{hi} above plain-{lo}",
                errors(nets, "plain", hi), errors(nets, "plain", lo)),
        higher(cfg, "not overfitting: the deeper plain net's test error is higher too",
                f"final test error of plain-{hi} above plain-{lo}",
                errors(nets, "plain", hi, "final_test_error"), errors(nets, "plain", lo, "final_test_error")),
        higher(cfg, f"deeper ResNets train better (ResNet-{hi} vs ResNet-{lo})",
                f"final training error of ResNet-{lo} above ResNet-{hi}",
                errors(nets, "resnet", lo), errors(nets, "resnet", hi)),
    ]
    if len(cfg.depths) > 2:
        parts += [_ordered(cfg, nets, "plain", rising=True), _ordered(cfg, nets, "resnet", rising=False)]
    n = min(len(errors(nets, k, d)) for k in KINDS for d in cfg.depths)
    summary = (f"final training error, mean ± 95% CI over {n} seed(s): "
               + "; ".join(f"{k}-{d} {stats.text(stats.summary(errors(nets, k, d)))}"
                           for k in KINDS for d in cfg.depths) + ".")
    numbers = {net_name(k, d): {"train_error": stats.summary(errors(nets, k, d)),
                                "test_error": stats.summary(errors(nets, k, d, "final_test_error"))}
               for k in KINDS for d in cfg.depths}
    return base.verdict(parts, summary, **numbers)


def paper_table(cfg: Config, nets: dict) -> dict[str, Any]:
    """Measured test error beside He et al.'s Table 6 (CIFAR-10, he2016 recipe only)."""
    on_cifar = cfg.dataset == "cifar10" and cfg.recipe == "he2016"
    rows = []
    for name, n in sorted(nets.items(), key=lambda kv: (kv[1]["kind"], kv[1]["depth"])):
        m = stats.summary([r["final_test_error"] for r in n["runs"]])
        measured = "n/a" if m["mean"] is None else stats.text({k: (v * 100 if isinstance(v, float) else v)
                                                                for k, v in m.items()}, ".2f")
        paper = PAPER_TEST_ERROR.get(n["depth"]) if n["kind"] == "resnet" else None
        rows.append([name, measured, (f"{paper:.2f}" if paper is not None else "curve only (Fig. 6)")
                     if on_cifar else "(CIFAR-10 he2016 only)"])
    return {"title": "Test error", "head": ["net", "measured test error %", "paper (Table 6, CIFAR-10) %"],
            "rows": rows}
