"""Looks-linear initialisation (Balduzzi et al. 2017, arXiv 1702.08591, §5): a deep plain
net with CReLU activations and mirrored weights ``[W0, -W0]`` (``W0`` orthogonal) computes a
linear function at initialisation, so its input-gradient does not shatter, at any depth.

What is measured
    Scalar-in, scalar-out plain nets from :func:`reslab.models.mlp.mlp` (``width`` units,
    ``depth`` hidden layers, BN by default), per depth and seed: the looks-linear net
    (``init="looks-linear"``: CReLU, mirrored orthogonal weights, zero biases) and, as the
    contrast, the default He-initialised ReLU net of the same depth and width.  ``df/dx``
    on ``grid_points`` inputs in ``[grid_lo, grid_hi]``, BN statistics of the grid held
    fixed (as in :mod:`reslab.experiments.shattered`).  Per curve: its relative spread
    ``std(df/dx) / mean|df/dx|`` (0 for a linear function), the lag-1 autocorrelation
    (undefined for a constant curve: stored as None), and the neighbour correlation
    ``sum g_i g_{i+1} / sqrt(sum g_i^2 sum g_{i+1}^2)``, the uncentred correlation of the
    gradients at neighbouring inputs (1 for a constant curve, about 0 for white noise).

The claim's parts and their criteria, fixed here before the run (see :func:`judge`).  Each
part quotes its source: the abstract of Balduzzi et al. where its words could be confirmed,
else §5 paraphrased (and marked so).  A part is *shown*, *not resolved* (a 95% interval over
seeds across the line) or *contradicted* (:mod:`reslab.experiments.verdicts`):
    1. the looks-linear net is linear at init: relative spread <= ``lin_tol`` for every
       depth and seed (deterministic: shown or contradicted; it holds by construction, so
       it is not a key part);
    2. its gradient is not shattered at the deepest depth: the 95% CI of the neighbour
       correlation over seeds lies above ``corr_floor`` (key).  A net whose df/dx is 0
       everywhere (BN on a scalar input makes every unit +-z, and the mirrored sums can
       cancel) has no neighbour correlation; it is counted as such and left out;
    3. the He-initialised plain net of that depth is shattered (the contrast the paper
       draws): the 95% CI of its lag-1 autocorrelation lies below ``shatter_ceiling``
       (0.5, midway between white noise's 0 and brown noise's ~1) (key).

Training (``train_iterations > 0``): the CIFAR plain net of ``train_depth`` layers with
looks-linear init (:func:`reslab.models.resnet.cifar_resnet`, ``init="looks-linear"``: CReLU,
mirrored orthogonal convs), the He-initialised plain net and the ResNet of the same depth
train with this module's own settings (``train_*``: Fashion-MNIST, width 0.25, 2,048
images, 600 iterations of 64, one-cycle lr, fp32), ``train_seeds`` seeds each, each net's
seeds as one bank (:mod:`reslab.experiments.sweep`).  Seed s gives the three nets the same
data, so they are compared seed by seed (paired 95% intervals).  Two more parts:
    4. the looks-linear plain net trains better than the He-initialised one: the paired 95%
       CI of (He minus looks-linear) final training error lies above 0 (key);
    5. it trains about as well as the ResNet: the paired 95% CI of (looks-linear minus
       ResNet) lies below ``about_tol`` (above it: contradicted; not a key part, its
       source is paraphrased).
The looks-linear net has about twice the parameters of its He twin (each conv reads the
CReLU's doubled channels); that is the construction, not a choice made here.

Not part of ``reslab reproduce`` (``IN_REPRODUCE = False``): its training half alone takes
longer than the rest of ``reproduce`` together; run it with ``reslab looks-linear``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from reslab.errors import ReslabError
from reslab.experiments import base, degradation, stats
from reslab.experiments.looks_linear_measure import KINDS, at_init
from reslab.experiments.scalar_grid import check_scalar_grid
from reslab.experiments.verdicts import BALDUZZI2017

NAME = "looks_linear"
TITLE = "Looks-linear initialisation (Balduzzi et al. 2017, §5)"
IN_REPRODUCE = False
ORDER = 50
HELP = "Balduzzi et al. §5: looks-linear init keeps deep plain nets unshattered"
DESCRIPTION = ("A deep plain CReLU net with looks-linear initialisation ([W0, -W0], W0 orthogonal) is linear at "
               "init, so its df/dx does not shatter; a He-initialised ReLU net of the same depth does. Then "
               "plain-56 with looks-linear init, plain-56 with He init and ResNet-56 train on Fashion-MNIST "
               "(3 seeds): the looks-linear net should train better than its He twin and about as well as the "
               "ResNet. Writes OUT/looks_linear/.")
CLAIM = ("A deep plain net with CReLU activations and looks-linear initialisation (mirrored weights [W0, -W0], "
         "W0 orthogonal) is linear at initialisation, so the gradient of its output with respect to its input "
         "does not shatter, whereas a He-initialised ReLU net of the same depth does (Balduzzi et al. 2017, "
         "arXiv 1702.08591, §5).")
SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=10, depths=(2, 10, 24, 50)),
    "full": dict(seeds=50, depths=(2, 4, 10, 24, 50, 100, 200)),
}


@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    min_seeds: ClassVar[int] = 2          # 95% intervals over seeds

    seeds: int = 10
    threads: int | None = 1
    seed0: int = 0
    depths: tuple[int, ...] = (2, 10, 24, 50)
    width: int = 200
    batchnorm: bool = True
    block: str = "postact"
    grid_points: int = 256
    grid_lo: float = -2.0
    grid_hi: float = 2.0
    # Criteria, fixed before the run (see judge):
    lin_tol: float = 1e-3                 # relative spread of df/dx allowed for "linear"
    corr_floor: float = 0.9               # looks-linear neighbour correlation CI low end above this
    shatter_ceiling: float = 0.5          # He net's lag-1 CI high end below this
    # Training (0 iterations: skip it): CIFAR plain nets, looks-linear vs He vs the ResNet.
    train_depth: int = 56                 # 6n+2
    train_seeds: int = 3
    train_iterations: int = 600           # iterations of train_batch images, per net
    train_batch: int = 64
    train_dataset: str = "fashion-mnist"
    train_subset: int = 2048              # training images used
    train_width: float = 0.25             # multiplier of the paper's 16/32/64 filters
    train_workers: int = 2                # processes training banks at once (one thread each)
    about_tol: float = 0.03               # "about as well": CI high end of (LL - ResNet) below this

    def __post_init__(self):
        super().__post_init__()
        check_scalar_grid(self)
        if self.train_iterations < 0 or self.train_seeds < 2 or not 0 < self.about_tol < 1 or self.train_workers < 1:
            raise ReslabError(f"need train_iterations >= 0, train_seeds >= 2 (intervals), 0 < about_tol < 1, "
                              f"train_workers >= 1; got {self.train_iterations}, {self.train_seeds}, {self.about_tol}, "
                              f"{self.train_workers}")
        if not (0 < self.lin_tol < 1 and 0 < self.corr_floor < 1 and 0 < self.shatter_ceiling < 1):
            raise ReslabError(f"need 0 < lin_tol, corr_floor, shatter_ceiling < 1; got "
                              f"{self.lin_tol}, {self.corr_floor}, {self.shatter_ceiling}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, NAME, scale, seeds, overrides)


def add_flags(p) -> None:
    """``reslab looks-linear``'s own flags."""
    p.add_argument("--depths", type=int, nargs="+", default=None, metavar="D", help="hidden layers per net")
    p.add_argument("--width", type=int, default=None, help="units per hidden layer (default: 200)")
    p.add_argument("--train-iterations", type=int, default=None, metavar="N",
                   help="iterations per CIFAR net in the training half (default: 600; 0 skips training)")


def overrides(args) -> dict[str, Any]:
    return {"depths": tuple(args.depths) if args.depths else None, "width": args.width,
            "train_iterations": args.train_iterations}


def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    start = time.perf_counter()
    data = at_init(cfg, ctx.say)
    if cfg.train_iterations:
        dcfg = training_config(cfg)
        ctx.say(f"training: plain-{cfg.train_depth} (looks-linear and He init) and ResNet-{cfg.train_depth}, "
                f"{cfg.train_seeds} seeds, {cfg.train_iterations} iterations each")
        with base.torch_threads(dcfg.threads):
            data["training"] = {"config": asdict(dcfg), "nets": degradation.train_all(dcfg, ctx)}
    verdict_ = judge(cfg, data)
    trained = (f"; training: {cfg.train_dataset}, {cfg.train_subset:,} images, {cfg.train_iterations} iterations of "
               f"{cfg.train_batch}, width {cfg.train_width:g}, {cfg.train_seeds} seeds" if cfg.train_iterations else
               "; no training")
    scope = {"data": f"scalar inputs: a grid of {cfg.grid_points} points in [{cfg.grid_lo:g}, {cfg.grid_hi:g}] at init"
                     + trained,
             "budget": f"depths {list(cfg.depths)}, width {cfg.width}, BN {'on' if cfg.batchnorm else 'off'}, "
                       f"block {cfg.block}"}
    return base.make_results(NAME, CLAIM, cfg, data, verdict_, time.perf_counter() - start, scope=scope)


def training_config(cfg: Config) -> degradation.Config:
    """The three nets of ``train_depth`` on this experiment's own settings, every one named
    here (the degradation presets change with that experiment's budget; these must not)."""
    n = cfg.train_iterations
    return degradation.config_for("quick", cfg.train_seeds, depths=(cfg.train_depth,), dataset=cfg.train_dataset,
                                  kinds=("plain", "plain-ll", "resnet"), recipe="quick", iterations=n,
                                  batch_size=cfg.train_batch, train_subset=cfg.train_subset, width=cfg.train_width,
                                  lr=0.1, val_size=1000, test_subset=2000, train_error_window=min(60, n),
                                  eval_every=n, log_every=min(20, n), amp="off", bank=True, bank_size=None,
                                  workers=cfg.train_workers, threads=1, constructed=False)


# ---------------------------------------------------------------- judging
# The abstract's words were read; §5's text could not be confirmed, so it is paraphrased.

SOURCE_ABSTRACT = BALDUZZI2017 + ", abstract"
SOURCE_S5 = BALDUZZI2017 + ", §5 (paraphrase)"
Q_LINEAR = ("Paraphrase of §5: with CReLU and mirrored weights [W0, -W0], each layer computes W0 x, so the "
            "network is linear at initialisation.")
Q_NOT_SHATTERED = 'Finally, we present a new "looks linear" (LL) initialization that prevents shattering.'
Q_SHATTERED = ("Specifically, we show that the correlation between gradients in standard feedforward networks "
               "decays exponentially with depth resulting in gradients that resemble white noise.")
Q_TRAINS = ("Preliminary experiments show the new initialization allows to train very deep networks without the "
            "addition of skip-connections.")
Q_ABOUT_RESNET = ("Paraphrase of §5's experiments: on CIFAR-10, deep plain CReLU nets with looks-linear "
                  "initialisation train where He-initialised plain nets of the same depth fall behind, and come "
                  "close to ResNets of the same depth.")


def _ci_status(s: dict, above: float | None = None, below: float | None = None) -> bool | None:
    """Shown if the 95% CI is clear of the line on the claim's side, contradicted if clear
    on the other, not resolved if it contains the line (or there is no interval)."""
    if s.get("lo") is None or s.get("hi") is None:
        return None
    if above is not None:
        return True if s["lo"] > above else False if s["hi"] < above else None
    return True if s["hi"] < below else False if s["lo"] > below else None


def training_parts(cfg: Config, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Parts 4 and 5 (module docstring), from the per-seed final training errors."""
    d = cfg.train_depth
    nets = data["training"]["nets"]
    dcfg = training_config(cfg)
    he, ll, res = (degradation.errors(nets, k, d) for k in ("plain", "plain-ll", "resnet"))
    better = degradation.higher(dcfg, f"the looks-linear plain-{d} trains better than the He-initialised plain-{d}",
                                f"final training error of the He-initialised plain-{d} above the looks-linear one",
                                he, ll, source=SOURCE_ABSTRACT, quote=Q_TRAINS)
    diff = stats.paired(ll, res)
    criterion = (f"final training error, looks-linear plain-{d} minus ResNet-{d}, paired by seed: the 95% CI of the "
                 f"mean difference lies below {cfg.about_tol:g} (shown); above it: contradicted; across it, or one "
                 f"seed only: not resolved")
    observed = (f"looks-linear {stats.text(stats.summary(ll))}, ResNet {stats.text(stats.summary(res))}, He plain "
                f"{stats.text(stats.summary(he))}; difference (LL - ResNet) {stats.paired_text(diff)}")
    about = base.part(f"the looks-linear plain-{d} trains about as well as ResNet-{d}", criterion,
                      _ci_status(diff, below=cfg.about_tol), observed if diff["mean"] is not None else "not run",
                      source=SOURCE_S5, quote=Q_ABOUT_RESNET, key=False)
    return [better, about]


def _missing(cfg: Config, data: dict[str, Any]) -> str | None:
    """What the criteria need and the run lacks (None: nothing)."""
    try:
        for d in cfg.depths:
            for kind in KINDS:
                data[kind][str(d)]["spread"]
        data["looks-linear"][str(max(cfg.depths))]["neighbour"], data["he"][str(max(cfg.depths))]["lag1"]
    except (KeyError, TypeError):
        return f"every depth {list(cfg.depths)} must be measured for both nets"
    if cfg.train_iterations:
        nets = data.get("training", {}).get("nets", {}) if isinstance(data.get("training"), dict) else {}
        lacking = [k for k in ("plain", "plain-ll", "resnet") if not degradation.errors(nets, k, cfg.train_depth)]
        if lacking:
            return (f"the training half was configured ({cfg.train_iterations} iterations) but nets "
                    f"{[degradation.net_name(k, cfg.train_depth) for k in lacking]} were not trained")
    return None


def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    missing = _missing(cfg, data)
    if missing:
        return base.cannot_judge(missing)
    deepest = str(max(cfg.depths))
    ll_spreads = [v for d in cfg.depths for v in data["looks-linear"][str(d)]["spread"] if v is not None]
    ll_nb_all = data["looks-linear"][deepest]["neighbour"]
    ll_nb = [v for v in ll_nb_all if v is not None]
    he_lag1 = [v for v in data["he"][deepest]["lag1"] if v is not None]
    nb, lag = stats.summary(ll_nb), stats.summary(he_lag1)
    if not ll_spreads:
        return base.cannot_judge("no looks-linear net was measured")
    worst = max(ll_spreads)
    flat = len(ll_nb_all) - len(ll_nb)
    parts = [
        base.part("the looks-linear net is linear at init",
                  f"std(df/dx) / mean|df/dx| over the grid <= {cfg.lin_tol:g} at every depth and seed "
                  "(deterministic: shown or contradicted)",
                  worst <= cfg.lin_tol, f"largest relative spread {worst:.2e} over depths {list(cfg.depths)}",
                  source=SOURCE_S5, quote=Q_LINEAR, key=False),
        base.part(f"the {deepest}-layer looks-linear net's df/dx is not shattered",
                  f"neighbour correlation of df/dx: the 95% CI over seeds lies above {cfg.corr_floor:g} (shown); "
                  f"below it: contradicted; across it, or fewer than 2 seeds: not resolved",
                  _ci_status(nb, above=cfg.corr_floor),
                  f"neighbour correlation {stats.text(nb)}" + (f"; {flat} seed(s) with df/dx = 0 everywhere (no "
                                                              "correlation; left out)" if flat else ""),
                  source=SOURCE_ABSTRACT, quote=Q_NOT_SHATTERED),
        base.part(f"the {deepest}-layer He-initialised plain net's df/dx is shattered (the contrast)",
                  f"lag-1 autocorrelation: the 95% CI over seeds lies below {cfg.shatter_ceiling:g} (shown); above "
                  f"it: contradicted; across it, or fewer than 2 seeds: not resolved",
                  _ci_status(lag, below=cfg.shatter_ceiling), f"lag-1 {stats.text(lag)}",
                  source=SOURCE_ABSTRACT, quote=Q_SHATTERED),
    ]
    if cfg.train_iterations:
        parts += training_parts(cfg, data)
    nb_text = "n/a" if nb["mean"] is None else f"{nb['mean']:.3f}"
    lag_text = "n/a" if lag["mean"] is None else f"{lag['mean']:.3f}"
    summary = (f"{deepest} layers: looks-linear relative spread <= {worst:.1e}, neighbour correlation {nb_text}; "
               f"He init lag-1 {lag_text}.")
    return base.verdict(parts, summary, looks_linear_neighbour=nb, he_lag1=lag, max_spread=worst)
