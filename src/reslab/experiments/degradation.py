"""The degradation problem (He et al. 2016, arXiv 1512.03385, §1, §4.2, Figs. 1 and 6, Table 6).

Plain and residual nets of two or more depths train on the same data, with the same
budget, recipe and seeds; a plain net and its ResNet twin differ only by the skips.  Seed s
gives every net the same training split, data order and augmentation, so the nets are
compared seed by seed (paired differences).  The seeds of one net train together as one
bank (:mod:`reslab.training.bank`): the same computation as separate runs, cheaper.

The verdict's parts (:mod:`reslab.experiments.degradation_judge`) each quote the sentence of
He et al. they test: deeper plain nets have higher training error, and thus higher test
error; the constructed solution (the shallower plain net plus identity layers,
:func:`reslab.models.deepen.deepen_plain`) is better than what the solver finds; deeper
ResNets have lower training error, and lower test error.

Scales (``SCALES``): a deeper ResNet overtakes a shallower one only near convergence and
the difference is small, so it needs a budget near convergence and several seeds;
``quick`` is the smallest budget measured to resolve it (benchmarks/RESULTS.md lists every
budget tried, the ones that failed included).  ``full`` is the paper's CIFAR-10 recipe.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from reslab.errors import ReslabError
from reslab.experiments import base, stats, sweep
from reslab.experiments.degradation_judge import errors, higher, judge  # noqa: F401  (the judge's API)
from reslab.experiments.sweep import EXTRA_KINDS, KINDS, net_name, train_all  # noqa: F401
from reslab.models.resnet import is_cifar_depth

NAME = "degradation"
TITLE = "The degradation problem (He et al. 2016)"
IN_REPRODUCE = True
ORDER = 40
HELP = "the degradation problem: plain-56 trains worse than plain-20, ResNet-56 better than ResNet-20"
DESCRIPTION = ("Train plain and residual nets of several depths on the same data, budget and seeds; "
               "judge each part of He et al.'s claim (deeper plain nets train worse, the constructed solution beats "
               "what the solver finds, deeper ResNets train better) with paired 95% intervals over seeds; "
               "each net's seeds train together as one bank; plot He et al. Fig. 6-style curves.  "
               "quick: the budget of `reslab reproduce` on a 2-core CPU (benchmarks/RESULTS.md); "
               "medium: nearer convergence; full: CIFAR-10 with the he2016 recipe.")


def add_flags(p) -> None:
    p.add_argument("--depths", type=int, nargs="+", help="depths, each 6n+2 (default: 20 56; full: 20 32 44 56 110)")
    p.add_argument("--recipe", choices=["quick", "he2016"], help="quick (one-cycle, CPU) or he2016 (§4.2, 64k iterations)")
    p.add_argument("--dataset", help="fashion-mnist (quick/medium default), cifar10 (full default), ...")
    p.add_argument("--iterations", type=int, help="iterations per net")
    p.add_argument("--train-subset", type=int, help="training images used")
    p.add_argument("--width", type=float, help="multiplier of the paper's 16/32/64 filters")
    p.add_argument("--batch-size", type=int, help="images per iteration")
    p.add_argument("--workers", type=int, help="processes training at once (each with --threads threads)")
    p.add_argument("--bank-size", type=int, help="seeds trained together as one bank (default: all)")
    p.add_argument("--no-bank", action="store_true", help="train every seed as a separate run")
    p.add_argument("--device", help="auto, cpu, cuda")


def overrides(args) -> dict:
    return dict(depths=tuple(args.depths) if args.depths else None, recipe=args.recipe, dataset=args.dataset,
                iterations=args.iterations, train_subset=args.train_subset, width=args.width, device=args.device,
                batch_size=args.batch_size, workers=args.workers, bank_size=args.bank_size,
                bank=False if args.no_bank else None)


CLAIM = ("He et al. 2016 (§1, §4.2, Figs. 1 and 6): a deeper plain net has higher training error than a "
         "shallower one (56 vs 20 layers), and thus higher test error, although a solution as good as the "
         "shallower net exists by construction: the degradation problem. With residual learning the situation is "
         "reversed: the deeper ResNet has lower training error, and lower test error, than the shallower one.")

# He et al. Table 6, CIFAR-10 test error (%), he2016 recipe; plain nets are shown only as curves (Fig. 6).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
RECIPES = ("quick", "he2016")

# Presets per scale; config_for() starts from these.  Every setting is in Config below.
SCALES: dict[str, dict[str, Any]] = {
    # The budget `reslab reproduce` runs, chosen by measurement (benchmarks/RESULTS.md, "Degradation budget"):
    # 6 seeds x 4 nets, 50 epochs of 512 images (near convergence), each net's seeds as one bank,
    # two banks at a time with one thread each.
    "quick": dict(seeds=6, width=0.25, train_subset=512, batch_size=64, iterations=400, eval_every=200,
                  log_every=20, train_error_window=40, workers=2, threads=1),
    # Nearer convergence: 600 iterations at batch 128 (37 epochs of 2,048 images).
    "medium": dict(seeds=5, width=0.25, train_subset=2048, batch_size=128, iterations=600, eval_every=200,
                   log_every=20, train_error_window=60, workers=2, threads=1),
    # He et al. §4.2 on CIFAR-10: 64k iterations per net; needs the dataset and, in practice, a GPU.
    "full": dict(seeds=1, depths=(20, 32, 44, 56, 110), dataset="cifar10", recipe="he2016", width=1.0,
                 train_subset=None, val_size=5000, test_subset=None, batch_size=128, iterations=64_000,
                 eval_every=1000, log_every=200, train_error_window=1000, bank=False),
}


@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    scales: ClassVar[tuple[str, ...]] = tuple(SCALES)

    seeds: int = 6
    depths: tuple[int, ...] = (20, 56)  # each 6n+2; the first and last are compared
    kinds: tuple[str, ...] = KINDS
    dataset: str = "fashion-mnist"
    recipe: str = "quick"               # quick: one-cycle lr over `iterations`; he2016: §4.2 exactly
    width: float = 0.25                 # multiplier of the paper's 16/32/64 filters (1 = paper)
    batch_size: int = 64                # images per iteration
    train_subset: int | None = 512      # training images used (None: the whole training split)
    val_size: int | None = 1000         # images held out of the training split for validation
    test_subset: int | None = 2000      # test images behind each point of the test curve
    iterations: int = 400               # per net (iterations, not epochs)
    lr: float = 0.1                     # peak lr of the one-cycle schedule, per batch_size images
    eval_every: int = 200               # iterations between val/test points on the curves
    log_every: int = 20                 # iterations averaged per logged training error
    amp: str = "auto"
    device: str = "auto"
    train_error_window: int = 40        # final training error: mean over the last N iterations
    workers: int = 1                    # processes training at once, each with `threads` threads
    bank: bool = True                   # train each net's seeds as one bank where it pays
    bank_size: int | None = None        # seeds per bank (None: all of them)
    constructed: bool = True            # build and measure He et al.'s constructed solution

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
        if self.bank_size is not None and self.bank_size < 1:
            raise ReslabError(f"bank_size must be >= 1 (or None: all seeds), got {self.bank_size}")
        if self.eval_every < 0:
            raise ReslabError(f"eval_every must be >= 0, got {self.eval_every}")
        if not (self.width > 0 and math.isfinite(self.width)) or not self.lr > 0:
            raise ReslabError(f"need width > 0 and lr > 0; got {self.width}, {self.lr}")
        if self.train_error_window > self.iterations:
            raise ReslabError(f"train_error_window ({self.train_error_window}) must not exceed iterations "
                              f"({self.iterations})")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "degradation", scale, seeds, overrides)


def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    t0 = time.perf_counter()
    nets = train_all(cfg, ctx)
    data = {"nets": nets, "tables": [paper_table(cfg, nets)]}
    if cfg.constructed and "plain" in cfg.kinds and len(cfg.depths) > 1:
        from reslab.experiments.constructed import measure

        ctx.say(f"constructed solution: plain-{min(cfg.depths)} + identity layers = plain-{max(cfg.depths)}, "
                f"per seed, against plain-{max(cfg.depths)} trained from scratch")
        data["constructed"] = measure(cfg, ctx)
    scope = {"data": f"{cfg.dataset}" + (f", {cfg.train_subset:,} training images" if cfg.train_subset else ""),
             "budget": sweep.budget_text(cfg), "compute": sweep.compute_text(cfg),
             "interval": "95% CI of the paired per-seed differences (Student's t, df = seeds - 1)"}
    return base.make_results("degradation", CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - t0, scope)


def paper_table(cfg: Config, nets: dict) -> dict[str, Any]:
    """Measured test error, beside He et al.'s Table 6 where the run is the paper's (CIFAR-10, he2016)."""
    on_cifar = cfg.dataset == "cifar10" and cfg.recipe == "he2016"
    rows = []
    for name, n in sorted(nets.items(), key=lambda kv: (kv[1]["kind"], kv[1]["depth"])):
        m = stats.summary([r["final_test_error"] for r in n["runs"]])
        measured = "n/a" if m["mean"] is None else stats.text({k: (v * 100 if isinstance(v, float) else v)
                                                                for k, v in m.items()}, ".2f")
        row = [name, measured]
        if on_cifar:
            paper = PAPER_TEST_ERROR.get(n["depth"]) if n["kind"] == "resnet" else None
            row.append(f"{paper:.2f}" if paper is not None else "curve only (Fig. 6)")
        rows.append(row)
    head = ["net", "measured test error %"] + (["paper (Table 6, CIFAR-10) %"] if on_cifar else [])
    return {"title": "Test error", "head": head, "rows": rows}
