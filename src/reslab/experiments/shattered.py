"""Shattered gradients (Balduzzi et al. 2017, arXiv 1702.08591): the input gradient of a
deep plain net looks like white noise; a ResNet's stays correlated, like brown noise.

What is measured
    * Scalar-in, scalar-out nets from :func:`reslab.models.mlp.mlp`: width 200, ReLU, He
      init, ``depth`` hidden layers (a ResNet of depth D has the same layers as the plain
      net plus D-1 skips around pre-activation branches BN → ReLU → Linear, scaled by β).
    * ``df/dx`` at 256 equally spaced inputs in [-2, 2], per seed, then the
      autocorrelation function of that sequence over the grid, averaged over seeds
      (Fig. 2), its lag-1 value per depth (the theory check), the gradient curves and
      their covariance over seeds (Fig. 1), and per-layer ReLU activity of a plain net
      with and without BN (Fig. 3; without BN the biases are ``bias``'s random draw).

BatchNorm (``bn = "grid-fixed"``, DESIGN.md trap)
    BN statistics are those of the 256-point grid, and per-input gradients are taken
    with those statistics held fixed (:mod:`reslab.probes.shattering`).  This is the
    setting in which the paper's picture appears.  Consequence, not hidden: with BN a
    *1-hidden-layer* net is degenerate, because BN removes each unit's bias and scale
    from ``w x + b``, so all units switch at the grid mean and df/dx takes two values.
    Fig. 1's 1-layer panel therefore uses the net without BN (``shallow_batchnorm``),
    whose random biases spread the kinks; the BN version is reported in ``traps``.

Traps reported, not hidden (``data["traps"]``)
    * No BN, zero biases: the ReLU net is positively homogeneous, df/dx takes a handful
      of values and cannot shatter.
    * No BN, random biases: shattering is weak (lag-1 stays high).

Seeding: the net for seed s is built right after ``torch.manual_seed(seed0 + s)``, once per
depth; the plain net and the β=1 and β=0.1 ResNets are that one net with its skips switched
(:meth:`MLP.set_skips`), so they differ only by skips and β.  The caller's RNG state is
restored afterwards.

Theory (Balduzzi et al. §3-4): the correlation between gradients decays like 2^-L in
plain nets and like 1/(β√L) in ResNets with BN, for inputs whose activation patterns
are independent.  At lag 1 (δ = 4/255) the measured correlation starts near 1, so the
report fits both the correlation ρ₁ and the decorrelation 1 - ρ₁; see :func:`theory`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reslab.errors import ReslabError
from reslab.experiments import base
from reslab.experiments.shattered_plots import plot  # noqa: F401  (figures: shattered.plot)
from reslab.models.mlp import mlp
from reslab.probes.shattering import (autocorrelation, brown_noise, input_gradients, input_grid,
                                      relu_activity, white_noise)

CLAIM = ("As a plain net gets deeper, the gradient of its output with respect to its input, over a "
         "1-D grid of inputs, looks like white noise; ResNets keep it correlated, like brown noise "
         "(Balduzzi et al. 2017, arXiv 1702.08591, Figs. 1-3).")

BN_MODES = ("grid-fixed",)
# Settings per scale; config_for() starts from these.  Tests shrink them with overrides.
SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=20, depths=(2, 4, 10, 24, 50)),
    "full": dict(seeds=50, depths=(2, 3, 4, 6, 8, 10, 16, 24, 32, 50)),
}


@dataclass(frozen=True)
class Config:
    scale: str = "quick"
    seeds: int = 20                       # nets per (kind, depth): seeds seed0 .. seed0+seeds-1
    seed0: int = 0
    depths: tuple[int, ...] = (2, 4, 10, 24, 50)  # hidden layers (nonlinearities) per net
    betas: tuple[float, ...] = (1.0, 0.1)  # ResNet branch scale β (Balduzzi §5)
    width: int = 200                      # units per hidden layer
    grid_points: int = 256
    grid_lo: float = -2.0
    grid_hi: float = 2.0
    bn: str = "grid-fixed"                # BN stats over the grid, held fixed for df/dx (module docstring)
    bias: bool = True                     # PyTorch's random bias draw (matters only without BN)
    max_lag: int = 64                     # autocorrelation lags 0..max_lag (grid steps)
    fig1_plain_depth: int = 24            # "24-layer feedforward net"
    fig1_resnet_depth: int = 50           # "50-layer ResNet" (β = betas[0])
    shallow_batchnorm: bool = False       # Fig. 1's 1-layer net: BN makes it 2-valued (docstring)
    activity_depth: int = 50              # plain net whose ReLU activity Fig. 3 shows, with and without BN
    white_tol: float = 0.1                # |lag-1| below this = "close to white noise" (white noise: ±1/√256)
    sig: float = 3.0                      # "clearly above" = mean - sig·sem above the white-noise band

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.scale not in SCALES:
            raise ReslabError(f"unknown scale {self.scale!r}; valid: {', '.join(SCALES)}")
        if self.seeds < 2:
            raise ReslabError(f"seeds must be >= 2 (the spread over seeds is reported), got {self.seeds}")
        if not self.depths or min(self.depths) < 1:
            raise ReslabError(f"every depth must be >= 1, got {self.depths}")
        if not self.betas or min(self.betas) <= 0:
            raise ReslabError(f"every beta must be > 0, got {self.betas}")
        if self.bn not in BN_MODES:
            raise ReslabError(f"unknown bn mode {self.bn!r}; valid: {', '.join(BN_MODES)}")
        if self.width < 1 or self.grid_points < 4 or not self.grid_lo < self.grid_hi:
            raise ReslabError(f"need width >= 1, grid_points >= 4, grid_lo < grid_hi; got "
                              f"{self.width}, {self.grid_points}, [{self.grid_lo}, {self.grid_hi}]")
        if not 1 <= self.max_lag < self.grid_points:
            raise ReslabError(f"max_lag must be in 1..grid_points-1, got {self.max_lag}")
        for name in ("fig1_plain_depth", "fig1_resnet_depth", "activity_depth"):
            if getattr(self, name) < 1:
                raise ReslabError(f"{name} must be >= 1, got {getattr(self, name)}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "shattered", scale, seeds, overrides)


# ---------------------------------------------------------------- measuring

def kind_name(beta: float | None) -> str:
    return "plain" if beta is None else f"resnet_beta={beta:g}"


def _net(cfg: Config, depth: int, seed: int, beta: float | None, batchnorm: bool = True, bias=None):
    torch.manual_seed(cfg.seed0 + seed)
    return mlp(depth, cfg.width, residual=beta is not None, batchnorm=batchnorm,
               beta=1.0 if beta is None else beta, bias=cfg.bias if bias is None else bias)


def gradients(cfg: Config, depth: int, beta: float | None, batchnorm: bool = True, bias=None) -> torch.Tensor:
    """``(seeds, grid_points)``: df/dx on the grid for each seed's net."""
    return kinds_gradients(cfg, depth, [beta], batchnorm, bias)[kind_name(beta)]


def kinds_gradients(cfg: Config, depth: int, betas: list[float | None], batchnorm: bool = True,
                    bias=None) -> dict[str, torch.Tensor]:
    """``{kind: (seeds, grid_points)}``; one net per seed, its skips switched per kind."""
    x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
    out: dict[str, list] = {kind_name(b): [] for b in betas}
    for s in range(cfg.seeds):
        net = _net(cfg, depth, s, None, batchnorm, bias)
        for beta in betas:
            net.set_skips(beta is not None, 1.0 if beta is None else beta)
            out[kind_name(beta)].append(input_gradients(net, x))
    return {k: torch.stack(v) for k, v in out.items()}


def stats(values) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if v.size > 1 else float("nan")
    return {"mean": float(v.mean()), "std": std, "sem": std / math.sqrt(v.size), "n": int(v.size)}


def distinct_values(g: torch.Tensor, rel: float = 1e-4) -> int:
    """Distinct values of a gradient sequence, up to ``rel`` of its largest magnitude."""
    scale = float(g.abs().max()) or 1.0
    return int(torch.unique(torch.round(g / (scale * rel))).numel())


def _rounded(t: torch.Tensor, digits: int = 4) -> list:
    return [[float(f"{v:.{digits}g}") for v in row] for row in t.tolist()]


def run(cfg: Config, progress: base.Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda msg: None)
    start = time.perf_counter()
    data: dict[str, Any] = {"acf": {}, "lag1": {}}
    kinds: list[float | None] = [None, *cfg.betas]
    keep = {}  # gradients reused by Fig. 1
    with torch.random.fork_rng(devices=[]):
        for beta in kinds:
            data["acf"][kind_name(beta)], data["lag1"][kind_name(beta)] = {}, {}
        for depth in cfg.depths:
            say(f"depth {depth}: df/dx for {cfg.seeds} seeds, plain and β = {', '.join(map(str, cfg.betas))}")
            for name, g in kinds_gradients(cfg, depth, kinds).items():
                acf = autocorrelation(g, cfg.max_lag).double()
                data["acf"][name][str(depth)] = {"mean": acf.mean(0), "std": acf.std(0)}
                data["lag1"][name][str(depth)] = {**stats(acf[:, 1]), "values": acf[:, 1]}
                keep[(name, depth)] = g

        say("Fig. 1: 1-layer net, noise references")
        gen = torch.Generator().manual_seed(cfg.seed0)
        n = cfg.grid_points
        res_name = kind_name(cfg.betas[0])
        shallow = "1-layer" + ("" if cfg.shallow_batchnorm else " (no BN)")
        fig1 = {
            shallow: gradients(cfg, 1, None, batchnorm=cfg.shallow_batchnorm),
            f"{cfg.fig1_plain_depth}-layer plain": keep.get(("plain", cfg.fig1_plain_depth)),
            f"{cfg.fig1_resnet_depth}-layer ResNet": keep.get((res_name, cfg.fig1_resnet_depth)),
            "brown noise": brown_noise(cfg.seeds, n, gen),
            "white noise": white_noise(cfg.seeds, n, gen),
        }
        if fig1[f"{cfg.fig1_plain_depth}-layer plain"] is None:
            fig1[f"{cfg.fig1_plain_depth}-layer plain"] = gradients(cfg, cfg.fig1_plain_depth, None)
        if fig1[f"{cfg.fig1_resnet_depth}-layer ResNet"] is None:
            fig1[f"{cfg.fig1_resnet_depth}-layer ResNet"] = gradients(cfg, cfg.fig1_resnet_depth, cfg.betas[0])
        data["fig1"] = {k: _rounded(v) for k, v in fig1.items()}
        data["fig1_lag1"] = {k: stats(autocorrelation(v, 1)[:, 1]) for k, v in fig1.items()}
        for k in ("brown noise", "white noise"):
            acf = autocorrelation(fig1[k], cfg.max_lag).double()
            data["acf"][k] = {"mean": acf.mean(0), "std": acf.std(0)}

        say(f"Fig. 3: ReLU activity of a {cfg.activity_depth}-layer plain net, with and without BN")
        x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
        data["activity"] = {}
        for label, batchnorm in (("with BN", True), ("without BN", False)):
            runs = [relu_activity(_net(cfg, cfg.activity_depth, s, None, batchnorm), x) for s in range(cfg.seeds)]
            data["activity"][label] = {
                key: {"mean": np.mean([r[key] for r in runs], 0), "std": np.std([r[key] for r in runs], 0, ddof=1)}
                for key in ("active", "coactive")}

        say("traps: no BN, zero or random biases")
        data["traps"] = traps(cfg, fig1[shallow])
    data["theory"] = theory(cfg, data["lag1"])
    data["notes"] = notes(cfg, data)
    verdict_ = judge(cfg, data)
    return base.make_results("shattered", CLAIM, cfg, data, verdict_, time.perf_counter() - start)


def traps(cfg: Config, shallow: torch.Tensor) -> dict[str, Any]:
    d = cfg.fig1_plain_depth
    out = {}
    for label, batchnorm, bias, depth in (
        (f"{d}-layer plain, no BN, zero biases", False, False, d),
        (f"{d}-layer plain, no BN, random biases", False, True, d),
        ("1-layer, BN over the grid", True, cfg.bias, 1),
    ):
        g = gradients(cfg, depth, None, batchnorm=batchnorm, bias=bias)
        out[label] = {"lag1": stats(autocorrelation(g, 1)[:, 1]),
                      "distinct_values": stats([distinct_values(row) for row in g])}
    out[f"1-layer, {'BN' if cfg.shallow_batchnorm else 'no BN'} (Fig. 1)"] = {
        "lag1": stats(autocorrelation(shallow, 1)[:, 1]),
        "distinct_values": stats([distinct_values(row) for row in shallow])}
    return out


# ---------------------------------------------------------------- theory and verdict

def _linfit(x, y) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, r²)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = float(((y - y.mean()) ** 2).sum())
    return float(a), float(b), (1 - float((resid ** 2).sum()) / ss) if ss > 0 else float("nan")


def theory(cfg: Config, lag1: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Fits of lag-1 correlation ρ₁ against depth L (hidden layers).

    Plain nets, paper: correlation ~ 2^-L.  Fit ln ρ₁ = a + b L over the depths where ρ₁
    is clearly positive (mean > sig·sem); the per-layer factor e^b is 1/2 in the paper.
    Because ρ₁ at lag 1 starts near 1, also fit ln(1 - ρ₁) = a + b L over the depths
    with ρ₁ > 1/2 (before saturation): its per-layer factor e^b reads as "the
    decorrelation doubles per layer" (2) in the paper's terms.
    ResNets, paper: correlation ~ 1/(β√L).  Fit ln ρ₁ = a + p ln L (paper p = -1/2),
    ln(1 - ρ₁) = a + q ln L, and the constant c of ρ₁ = c/(β√L) by least squares.
    """
    out: dict[str, Any] = {"L": "hidden layers (depth)"}
    plain = lag1.get("plain", {})
    L = np.array([int(k) for k in plain], float)
    m = np.array([plain[k]["mean"] for k in plain])
    sem = np.array([plain[k]["sem"] for k in plain])
    fit = {"paper": "rho1 ~ 2^-L (per-layer factor 0.5)"}
    pos = m > cfg.sig * sem
    if pos.sum() >= 2:
        a, b, r2 = _linfit(L[pos], np.log(m[pos]))
        fit.update(depths=[int(d) for d in L[pos]], per_layer_factor=math.exp(b), r2=r2)
    unsat = m > 0.5
    if unsat.sum() >= 2:
        a, b, r2 = _linfit(L[unsat], np.log(1 - m[unsat]))
        fit.update(decorrelation_depths=[int(d) for d in L[unsat]], decorrelation_per_layer_factor=math.exp(b),
                   decorrelation_r2=r2)
    out["plain"] = fit
    for beta in cfg.betas:
        name = kind_name(beta)
        res = lag1.get(name, {})
        L = np.array([int(k) for k in res], float)
        m = np.array([res[k]["mean"] for k in res])
        fit = {"paper": "rho1 ~ 1/(beta sqrt(L)) (exponent -0.5)", "beta": beta}
        if len(L) >= 2 and (m > 0).all() and (m < 1).all():
            _, p, r2 = _linfit(np.log(L), np.log(m))
            _, q, r2q = _linfit(np.log(L), np.log(1 - m))
            xs = 1 / (beta * np.sqrt(L))
            c = float((xs * m).sum() / (xs * xs).sum())
            fit.update(exponent=p, r2=r2, decorrelation_exponent=q, decorrelation_r2=r2q, c=c,
                       c_fit_rmse=float(np.sqrt(((m - c * xs) ** 2).mean())))
        out[name] = fit
    return out


def notes(cfg: Config, data: dict[str, Any]) -> list[str]:
    """Plain-text statements of the choices made and of how the fits compare with the paper."""
    out = [
        "BatchNorm: statistics over the grid of inputs, held fixed when differentiating "
        "(df(x_i)/dx_i with each layer's mean and variance as constants).",
        f"Fig. 1's 1-layer net is {'with' if cfg.shallow_batchnorm else 'without'} BN: with BN over the grid "
        "a 1-hidden-layer net on a scalar input switches all units at the grid mean (2-valued df/dx).",
        "Nets of one depth and seed share their weights across plain / ResNet / beta; only skips and beta differ.",
    ]
    t = data["theory"]
    p = t.get("plain", {})
    if "per_layer_factor" in p:
        out.append(f"Plain nets: lag-1 correlation falls by x{p['per_layer_factor']:.2f} per layer over depths "
                   f"{list(p['depths'])} (paper's 2^-L: x0.5).")
    if "decorrelation_per_layer_factor" in p:
        out.append(f"Plain nets: 1 - lag-1 grows by x{p['decorrelation_per_layer_factor']:.2f} per layer over depths "
                   f"{list(p['decorrelation_depths'])} (a 2^L growth would be x2).")
    for beta in cfg.betas:
        r = t.get(kind_name(beta), {})
        if "exponent" in r:
            out.append(f"ResNets beta={beta:g}: lag-1 ~ L^{r['exponent']:.2f} (paper 1/(beta sqrt L): L^-0.5); "
                       f"1 - lag-1 ~ L^{r['decorrelation_exponent']:.2f}; best c in c/(beta sqrt L) = {r['c']:.2f} "
                       f"with rms error {r['c_fit_rmse']:.2f}.")
    return out


def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    lag1 = data["lag1"]
    dp, dr = cfg.fig1_plain_depth, cfg.fig1_resnet_depth
    b1, b2 = (cfg.betas + (None,))[:2]
    plain = lag1["plain"].get(str(dp))
    res = lag1[kind_name(b1)].get(str(dr))
    small = lag1[kind_name(b2)].get(str(dr)) if b2 is not None else None
    if plain is None or res is None:
        return base.verdict(False, f"depths {dp} (plain) and {dr} (ResNet) must both be in depths={cfg.depths}")
    white = abs(plain["mean"]) < cfg.white_tol
    corr = res["mean"] - cfg.sig * res["sem"] > cfg.white_tol
    parts = [f"lag-1 autocorrelation of df/dx (mean ± std over n={plain['n']} seeds, BN {cfg.bn}): "
             f"{dp}-layer plain {plain['mean']:.3f} ± {plain['std']:.3f} "
             f"({'white-like' if white else 'NOT white-like'}: |mean| {'<' if white else '>='} {cfg.white_tol}); "
             f"{dr}-layer ResNet β={b1:g} {res['mean']:.3f} ± {res['std']:.3f} "
             f"({'clearly' if corr else 'NOT clearly'} above the white band)"]
    ok = white and corr
    numbers = {"plain": plain, "resnet": res}
    if small is not None:
        diff = small["mean"] - res["mean"]
        more = diff > cfg.sig * math.hypot(small["sem"], res["sem"])
        ok = ok and more
        parts.append(f"β={b2:g} {small['mean']:.3f} ± {small['std']:.3f} "
                     f"({'keeps more' if more else 'does NOT keep clearly more'}: +{diff:.3f})")
        numbers["resnet_small_beta"] = small
    t = data.get("theory", {}).get("plain", {})
    if "per_layer_factor" in t:
        parts.append(f"plain ρ₁ falls by ×{t['per_layer_factor']:.2f}/layer (paper 2^-L: ×0.5)")
    return base.verdict(ok, "; ".join(parts), **numbers)
