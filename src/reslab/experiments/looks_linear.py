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

The claim's parts and their criteria, fixed here before the run (see :func:`judge`):
    1. the looks-linear net is linear at init: relative spread <= ``lin_tol`` for every
       depth and seed;
    2. its gradient is not shattered at the deepest depth: the 95% CI of the neighbour
       correlation over seeds lies above ``corr_floor``;
    3. the He-initialised plain net of that depth is shattered (the contrast the paper
       draws): the 95% CI of its lag-1 autocorrelation lies below ``shatter_ceiling``
       (0.5, midway between white noise's 0 and brown noise's ~1).

Training (``train_iterations > 0``): the CIFAR plain net of ``train_depth`` layers with
looks-linear init (:func:`reslab.models.resnet.cifar_resnet`, ``init="looks-linear"``: CReLU,
mirrored orthogonal convs), the He-initialised plain net and the ResNet of the same depth
train on the degradation experiment's quick setting (Fashion-MNIST, width 0.25, 2,048
images, one-cycle lr, two nets at a time), ``train_seeds`` seeds each.  Two more parts:
    4. the looks-linear plain net trains better than the He-initialised one: the 95% CI of
       (He minus looks-linear) final training error lies above 0;
    5. it trains about as well as the ResNet: the 95% CI of (looks-linear minus ResNet)
       lies below ``about_tol``.
The looks-linear net has about twice the parameters of its He twin (each conv reads the
CReLU's doubled channels); that is the construction, not a choice made here.

Not registered in :data:`reslab.experiments.EXPERIMENTS` (it would break the main job's
10-minute budget); run it with ``reslab looks-linear``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from reslab.errors import ReslabError
from reslab.experiments import base, degradation, stats
from reslab.experiments.scalar_grid import check_scalar_grid
from reslab.models.mlp import mlp
from reslab.probes.shattering import input_gradients, input_grid, lag1_autocorrelation

NAME = "looks_linear"
TITLE = "Looks-linear initialisation (Balduzzi et al. 2017, §5)"
CLAIM = ("A deep plain net with CReLU activations and looks-linear initialisation (mirrored weights [W0, -W0], "
         "W0 orthogonal) is linear at initialisation, so the gradient of its output with respect to its input "
         "does not shatter, whereas a He-initialised ReLU net of the same depth does (Balduzzi et al. 2017, "
         "arXiv 1702.08591, §5).")
KINDS = ("looks-linear", "he")
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
    about_tol: float = 0.03               # "about as well": CI high end of (LL - ResNet) below this

    def __post_init__(self):
        super().__post_init__()
        check_scalar_grid(self)
        if self.train_iterations < 0 or self.train_seeds < 2 or not 0 < self.about_tol < 1:
            raise ReslabError(f"need train_iterations >= 0, train_seeds >= 2 (intervals), 0 < about_tol < 1; got "
                              f"{self.train_iterations}, {self.train_seeds}, {self.about_tol}")
        if not (0 < self.lin_tol < 1 and 0 < self.corr_floor < 1 and 0 < self.shatter_ceiling < 1):
            raise ReslabError(f"need 0 < lin_tol, corr_floor, shatter_ceiling < 1; got "
                              f"{self.lin_tol}, {self.corr_floor}, {self.shatter_ceiling}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, NAME, scale, seeds, overrides)


# ---------------------------------------------------------------- measuring

def curve_numbers(g: torch.Tensor) -> dict[str, float | None]:
    """Relative spread, lag-1 autocorrelation (None if constant) and neighbour correlation."""
    g = g.double()
    spread = float(g.std() / g.abs().mean().clamp_min(1e-300))
    lag1 = None if spread < 1e-9 else float(lag1_autocorrelation(g))
    nb = float((g[1:] * g[:-1]).sum() / ((g[1:].square().sum() * g[:-1].square().sum()).sqrt().clamp_min(1e-300)))
    return {"spread": spread, "lag1": lag1, "neighbour": nb}


def _net(cfg: Config, kind: str, depth: int, seed: int):
    torch.manual_seed(cfg.seed0 + seed)
    return mlp(depth, cfg.width, batchnorm=cfg.batchnorm, block=cfg.block,
               init="looks-linear" if kind == "looks-linear" else "he")


def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    start = time.perf_counter()
    x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
    data: dict[str, Any] = {k: {} for k in KINDS}
    data["example"] = {}
    with torch.random.fork_rng(devices=[]):
        for depth in cfg.depths:
            ctx.say(f"depth {depth}: df/dx of {cfg.seeds} looks-linear and He-initialised plain nets")
            for kind in KINDS:
                rows = []
                for s in range(cfg.seeds):
                    g = input_gradients(_net(cfg, kind, depth, s), x)
                    rows.append(curve_numbers(g))
                    if s == 0 and depth == max(cfg.depths):
                        data["example"][kind] = [round(float(v), 6) for v in g]
                data[kind][str(depth)] = {key: [r[key] for r in rows] for key in ("spread", "lag1", "neighbour")}
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
    """The degradation experiment's quick setting, for the three nets of ``train_depth``."""
    return degradation.config_for("quick", cfg.train_seeds, depths=(cfg.train_depth,), dataset=cfg.train_dataset,
                                  kinds=("plain", "plain-ll", "resnet"), iterations=cfg.train_iterations,
                                  batch_size=cfg.train_batch, train_subset=cfg.train_subset, width=cfg.train_width,
                                  train_error_window=min(60, cfg.train_iterations),
                                  eval_every=cfg.train_iterations, log_every=min(20, cfg.train_iterations))


# ---------------------------------------------------------------- judging

def training_parts(cfg: Config, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Parts 4 and 5 (module docstring), from the per-seed final training errors."""
    d = cfg.train_depth
    nets = data.get("training", {}).get("nets", {})
    dcfg = training_config(cfg)
    he, ll, res = (degradation.errors(nets, k, d) for k in ("plain", "plain-ll", "resnet"))
    parts = [degradation.higher(dcfg, f"the looks-linear plain-{d} trains better than the He-initialised plain-{d}",
                                f"final training error of the He-initialised plain-{d} above the looks-linear one",
                                he, ll)]
    diff = stats.difference(ll, res)
    criterion = (f"final training error, looks-linear plain-{d} minus ResNet-{d}: the high end of the 95% CI of "
                 f"the difference of means over seeds is below {cfg.about_tol:g}")
    if diff["hi"] is None:
        parts.append(base.part(f"the looks-linear plain-{d} trains about as well as ResNet-{d}", criterion, False,
                               "not run, or fewer than 2 seeds"))
    else:
        parts.append(base.part(f"the looks-linear plain-{d} trains about as well as ResNet-{d}", criterion,
                               diff["hi"] < cfg.about_tol,
                               f"looks-linear {stats.text(stats.summary(ll))}, ResNet {stats.text(stats.summary(res))}"
                               f", He plain {stats.text(stats.summary(he))}; difference (LL - ResNet) "
                               f"{stats.text({**diff, 'n': min(diff['n'])}, '+.3f')}"))
    return parts


def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    deepest = str(max(cfg.depths))
    try:
        ll_spreads = [v for d in cfg.depths for v in data["looks-linear"][str(d)]["spread"]]
        ll_nb = data["looks-linear"][deepest]["neighbour"]
        he_lag1 = [v for v in data["he"][deepest]["lag1"] if v is not None]
    except (KeyError, TypeError):
        return base.cannot_judge(f"every depth {list(cfg.depths)} must be measured for both nets")
    nb, lag = stats.summary(ll_nb), stats.summary(he_lag1)
    if nb["half"] is None or lag["half"] is None or not ll_spreads:
        return base.cannot_judge("the criteria need 95% intervals: at least 2 seeds per net")
    worst = max(ll_spreads)
    parts = [
        base.part("the looks-linear net is linear at init",
                  f"std(df/dx) / mean|df/dx| over the grid <= {cfg.lin_tol:g} at every depth and seed",
                  worst <= cfg.lin_tol, f"largest relative spread {worst:.2e} over depths {list(cfg.depths)}"),
        base.part(f"the {deepest}-layer looks-linear net's df/dx is not shattered",
                  f"neighbour correlation of df/dx: low end of its 95% CI > {cfg.corr_floor:g}",
                  nb["lo"] > cfg.corr_floor, f"neighbour correlation {stats.text(nb)}"),
        base.part(f"the {deepest}-layer He-initialised plain net's df/dx is shattered (the contrast)",
                  f"lag-1 autocorrelation: high end of its 95% CI < {cfg.shatter_ceiling:g}",
                  lag["hi"] < cfg.shatter_ceiling, f"lag-1 {stats.text(lag)}"),
    ]
    if cfg.train_iterations:
        parts += training_parts(cfg, data)
    summary = (f"{deepest} layers: looks-linear relative spread <= {worst:.1e}, neighbour correlation "
               f"{nb['mean']:.3f}; He init lag-1 {lag['mean']:.3f}.")
    return base.verdict(parts, summary, looks_linear_neighbour=nb, he_lag1=lag, max_spread=worst)
