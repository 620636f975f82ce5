"""Shattered gradients (Balduzzi et al. 2017, arXiv 1702.08591): the input gradient of a
deep plain net looks like white noise; a ResNet's stays correlated, like brown noise.

What is measured
    * Scalar-in, scalar-out nets from :func:`reslab.models.mlp.mlp`: width 200, ReLU, He
      init, ``depth`` hidden layers; a ResNet of depth D has the same layers as the plain
      net plus D-1 skips scaled by β.  The residual block's layout is ``block`` (default
      ``postact``: ``a + β·ReLU(BN(W a))``); the other layout (``preact``:
      ``z + β·W·ReLU(BN(z))``) is measured too, at the Fig. 1 ResNet depth, as context.
      Which layout the paper uses could not be verified from its text; see
      :mod:`reslab.models.mlp` for why ``postact`` is the default.
    * ``df/dx`` at 256 equally spaced inputs in [-2, 2], per seed; the autocorrelation
      function (ACF) of that sequence over the grid, per seed, averaged over seeds (Fig. 2);
      its lag-1 value, and its half-width (the lag, interpolated, at which a seed's ACF
      first falls below 1/2: how wide the band of the Fig. 1 covariance matrix is); the
      same for brown noise (random walks) and white noise on the same grid; the gradient
      curves and their covariance over seeds (Fig. 1); per-layer ReLU activity of a plain
      net with and without BN (Fig. 3; without BN the biases are ``bias``'s random draw).

BatchNorm (``bn = "grid-fixed"``)
    BN statistics are those of the 256-point grid, and per-input gradients are taken with
    those statistics held fixed (:mod:`reslab.probes.shattering`): the outputs are the
    train-mode outputs on the grid, and df(x_i)/dx_i does not mix inputs.  Without BN, a
    ReLU net with zero biases is positively homogeneous, so on a scalar input its df/dx
    takes a handful of values and cannot shatter; with random biases and no BN shattering
    is weak.  Both are reported in ``traps``.  With BN a *1-hidden-layer* net is degenerate:
    BN removes each unit's bias and scale from ``w x + b``, so all units switch at the grid
    mean and df/dx takes two values.  Fig. 1's 1-layer panel therefore uses the net without
    BN (``shallow_batchnorm``), whose random biases spread the kinks; the BN version is in
    ``traps``.

Not tested here: the paper's depth laws for the correlation of gradients at inputs whose
activation patterns differ (2^-L for plain nets, 1/(β√L) for ResNets with BN).  The lag-1
autocorrelation on this grid (neighbouring inputs, mostly shared activation patterns) is
not the quantity those theorems are about, so no law is fitted to it.

Seeding: the net for seed s is built right after ``torch.manual_seed(seed0 + s)``, once per
depth; the plain net and the β ResNets are that one net with its skips switched
(:meth:`MLP.set_skips`), so they differ only by skips and β.  The context layout's nets
have the same Linear weights per seed.  The caller's RNG state is restored afterwards.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from reslab.errors import ReslabError
from reslab.experiments import base, stats
from reslab.experiments.scalar_grid import check_scalar_grid
from reslab.models.mlp import BLOCKS, mlp
from reslab.probes.shattering import (autocorrelation, brown_noise, input_gradients, input_grid, relu_activity,
                                      white_noise)

CLAIM = ("As a plain net gets deeper, the gradient of its output with respect to its input, over a "
         "1-D grid of inputs, looks like white noise; ResNets keep it correlated, like brown noise, and "
         "more so with the branch rescaled by β = 0.1 (Balduzzi et al. 2017, arXiv 1702.08591, Figs. 1-2).")

BN_MODES = ("grid-fixed",)
BROWN, WHITE = "brown noise", "white noise"
# Settings per scale; config_for() starts from these.  Tests shrink them with overrides.
SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=20, depths=(2, 4, 10, 24, 50)),
    "full": dict(seeds=50, depths=(2, 3, 4, 6, 8, 10, 16, 24, 32, 50)),
}


@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    min_seeds: ClassVar[int] = 2          # the judgement needs 95% intervals over seeds

    seeds: int = 20                       # nets per (kind, depth): seeds seed0 .. seed0+seeds-1
    threads: int | None = 1               # tiny matmuls: one thread (base.torch_threads)
    seed0: int = 0
    depths: tuple[int, ...] = (2, 4, 10, 24, 50)  # hidden layers (nonlinearities) per net
    betas: tuple[float, ...] = (1.0, 0.1)  # ResNet branch scale β (Balduzzi §5); judged: betas[1] vs betas[0]
    block: str = "postact"                # residual block layout judged; the other is measured as context
    width: int = 200                      # units per hidden layer
    grid_points: int = 256
    grid_lo: float = -2.0
    grid_hi: float = 2.0
    bn: str = "grid-fixed"                # BN stats over the grid, held fixed for df/dx (module docstring)
    bias: bool = True                     # PyTorch's random bias draw (matters only without BN)
    max_lag: int = 64                     # ACF lags kept in the results (grid steps)
    fig1_plain_depth: int = 24            # "24-layer feedforward net"
    fig1_resnet_depth: int = 50           # "50-layer ResNet" (β = betas[0])
    shallow_batchnorm: bool = False       # Fig. 1's 1-layer net: BN makes it 2-valued (docstring)
    activity_depth: int = 50              # plain net whose ReLU activity Fig. 3 shows, with and without BN
    # Criteria, fixed before the run (see judge):
    white_tol: float = 0.1                # plain lag-1 and its CI within ±white_tol (white noise: ~±2/√256)
    brown_tol: float = 0.08               # ResNet lag-1 CI low end >= brown noise's lag-1 - brown_tol (~0.9)
    band_frac: float = 0.5                # ResNet ACF half-width CI low end >= band_frac x brown noise's

    def __post_init__(self):
        super().__post_init__()
        check_scalar_grid(self)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if not self.betas or min(self.betas) <= 0:
            raise ReslabError(f"every beta must be > 0, got {self.betas}")
        if self.bn not in BN_MODES:
            raise ReslabError(f"unknown bn mode {self.bn!r}; valid: {', '.join(BN_MODES)}")
        if not 1 <= self.max_lag < self.grid_points:
            raise ReslabError(f"max_lag must be in 1..grid_points-1, got {self.max_lag}")
        for name in ("fig1_plain_depth", "fig1_resnet_depth", "activity_depth"):
            if getattr(self, name) < 1:
                raise ReslabError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (0 < self.white_tol < 1 and 0 < self.brown_tol < 1 and 0 < self.band_frac <= 1):
            raise ReslabError(f"need 0 < white_tol, brown_tol < 1 and 0 < band_frac <= 1; got "
                              f"{self.white_tol}, {self.brown_tol}, {self.band_frac}")

    @property
    def context_block(self) -> str:
        return next(b for b in BLOCKS if b != self.block)


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "shattered", scale, seeds, overrides)


# ---------------------------------------------------------------- measuring

def kind_name(beta: float | None) -> str:
    return "plain" if beta is None else f"resnet_beta={beta:g}"


def _net(cfg: Config, depth: int, seed: int, beta: float | None, batchnorm: bool = True, bias=None,
         block: str | None = None):
    torch.manual_seed(cfg.seed0 + seed)
    return mlp(depth, cfg.width, residual=beta is not None, batchnorm=batchnorm,
               beta=1.0 if beta is None else beta, bias=cfg.bias if bias is None else bias,
               block=block or cfg.block)


def kinds_gradients(cfg: Config, depth: int, betas: list[float | None], batchnorm: bool = True,
                    bias=None, block: str | None = None) -> dict[str, torch.Tensor]:
    """``{kind: (seeds, grid_points)}``: df/dx on the grid; one net per seed, its skips
    switched per kind."""
    x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
    out: dict[str, list] = {kind_name(b): [] for b in betas}
    for s in range(cfg.seeds):
        net = _net(cfg, depth, s, None, batchnorm, bias, block)
        for beta in betas:
            net.set_skips(beta is not None, 1.0 if beta is None else beta)
            out[kind_name(beta)].append(input_gradients(net, x))
    return {k: torch.stack(v) for k, v in out.items()}


def gradients(cfg: Config, depth: int, beta: float | None, batchnorm: bool = True, bias=None) -> torch.Tensor:
    """``(seeds, grid_points)``: df/dx on the grid for each seed's net."""
    return kinds_gradients(cfg, depth, [beta], batchnorm, bias)[kind_name(beta)]


def half_width(acf: torch.Tensor) -> torch.Tensor:
    """Per row of a full ACF ``(S, n)``: the lag at which it first falls below 1/2,
    interpolated linearly between grid steps; ``n - 1`` if it never does."""
    acf = acf.double()
    below = acf < 0.5
    k = below.double().argmax(-1)  # first lag below 1/2 (0 if none: ACF(0) = 1)
    rows = torch.arange(acf.shape[0])
    a, b = acf[rows, (k - 1).clamp(min=0).long()], acf[rows, k.long()]
    frac = torch.where(a > b, (a - 0.5) / (a - b), torch.zeros_like(a))
    return torch.where(below.any(-1), k - 1 + frac, torch.full_like(a, acf.shape[-1] - 1))


def measure(g: torch.Tensor, max_lag: int) -> dict[str, Any]:
    """The ACF (mean and std over rows, lags 0..max_lag), lag-1 and half-width per row."""
    acf = autocorrelation(g).double()
    lag1, hw = acf[:, 1], half_width(acf)
    return {"acf": {"mean": acf[:, :max_lag + 1].mean(0), "std": acf[:, :max_lag + 1].std(0)},
            "lag1": {**stats.summary(lag1.tolist()), "values": lag1.tolist()},
            "halfwidth": {**stats.summary(hw.tolist()), "values": hw.tolist()}}


def distinct_values(g: torch.Tensor, rel: float = 1e-4) -> int:
    """Distinct values of a gradient sequence, up to ``rel`` of its largest magnitude."""
    scale = float(g.abs().max()) or 1.0
    return int(torch.unique(torch.round(g / (scale * rel))).numel())


def _rounded(t: torch.Tensor, digits: int = 4) -> list:
    return [[float(f"{v:.{digits}g}") for v in row] for row in t.tolist()]


def _store(data: dict, name: str, depth: str, m: dict) -> None:
    for key in ("acf", "lag1", "halfwidth"):
        data[key].setdefault(name, {})[depth] = m[key]


def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    say = ctx.say
    start = time.perf_counter()
    data: dict[str, Any] = {"block": cfg.block, "acf": {}, "lag1": {}, "halfwidth": {}}
    kinds: list[float | None] = [None, *cfg.betas]
    keep = {}  # gradients reused by Fig. 1
    n = cfg.grid_points
    with torch.random.fork_rng(devices=[]):
        for depth in cfg.depths:
            say(f"depth {depth}: df/dx for {cfg.seeds} seeds, plain and β = {', '.join(map(str, cfg.betas))}")
            for name, g in kinds_gradients(cfg, depth, kinds).items():
                _store(data, name, str(depth), measure(g, cfg.max_lag))
                keep[(name, depth)] = g

        other, dr = cfg.context_block, cfg.fig1_resnet_depth
        say(f"context: {dr}-layer ResNets with the {other} block")
        data["context"] = {"block": other, "depth": dr, "acf": {}, "lag1": {}, "halfwidth": {}}
        for name, g in kinds_gradients(cfg, dr, list(cfg.betas), block=other).items():
            _store(data["context"], name, str(dr), measure(g, cfg.max_lag))

        say("Fig. 1: 1-layer net, noise references")
        gen = torch.Generator().manual_seed(cfg.seed0)
        res_name = kind_name(cfg.betas[0])
        shallow = "1-layer" + ("" if cfg.shallow_batchnorm else " (no BN)")
        plain_label, res_label = f"{cfg.fig1_plain_depth}-layer plain", f"{dr}-layer ResNet"
        fig1 = {
            shallow: gradients(cfg, 1, None, batchnorm=cfg.shallow_batchnorm),
            plain_label: keep.get(("plain", cfg.fig1_plain_depth)),
            res_label: keep.get((res_name, dr)),
            BROWN: brown_noise(cfg.seeds, n, gen),
            WHITE: white_noise(cfg.seeds, n, gen),
        }
        if fig1[plain_label] is None:
            fig1[plain_label] = gradients(cfg, cfg.fig1_plain_depth, None)
        if fig1[res_label] is None:
            fig1[res_label] = gradients(cfg, dr, cfg.betas[0])
        data["fig1"] = {k: _rounded(v) for k, v in fig1.items()}
        data["fig1_lag1"] = {k: stats.summary(autocorrelation(v, 1)[:, 1].tolist()) for k, v in fig1.items()}
        data["noise"] = {k: measure(fig1[k], cfg.max_lag) for k in (BROWN, WHITE)}
        for k in (BROWN, WHITE):
            data["acf"][k] = data["noise"][k]["acf"]

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
    data["notes"] = notes(cfg)
    verdict_ = judge(cfg, data)
    scope = {"data": f"scalar inputs: a grid of {n} points in [{cfg.grid_lo:g}, {cfg.grid_hi:g}]; nets at "
                     f"initialisation, no training",
             "budget": f"depths {list(cfg.depths)}, width {cfg.width}, β {list(cfg.betas)}, block {cfg.block} "
                       f"(context: {cfg.context_block} at depth {dr})"}
    return base.make_results("shattered", CLAIM, cfg, data, verdict_, time.perf_counter() - start, scope=scope)


def traps(cfg: Config, shallow: torch.Tensor) -> dict[str, Any]:
    d = cfg.fig1_plain_depth
    out = {}

    def entry(g):
        return {"lag1": stats.summary(autocorrelation(g, 1)[:, 1].tolist()),
                "distinct_values": stats.summary([distinct_values(row) for row in g])}

    for label, batchnorm, bias, depth in (
        (f"{d}-layer plain, no BN, zero biases", False, False, d),
        (f"{d}-layer plain, no BN, random biases", False, True, d),
        ("1-layer, BN over the grid", True, cfg.bias, 1),
    ):
        out[label] = entry(gradients(cfg, depth, None, batchnorm=batchnorm, bias=bias))
    out[f"1-layer, {'BN' if cfg.shallow_batchnorm else 'no BN'} (Fig. 1)"] = entry(shallow)
    return out


def notes(cfg: Config) -> list[str]:
    """Plain-text statements of the choices made."""
    return [
        "BatchNorm: statistics over the grid of inputs, held fixed when differentiating "
        "(df(x_i)/dx_i with each layer's mean and variance as constants).",
        f"Residual block judged: {cfg.block} "
        + ("(a + β·ReLU(BN(W a)))" if cfg.block == "postact" else "(z + β·W·ReLU(BN(z)))")
        + f"; the {cfg.context_block} layout is reported as context.  The paper's exact layout was not "
        "verified from its text; postact is the default because it reproduces Fig. 1(c).",
        f"Fig. 1's 1-layer net is {'with' if cfg.shallow_batchnorm else 'without'} BN: with BN over the grid "
        "a 1-hidden-layer net on a scalar input switches all units at the grid mean (2-valued df/dx).",
        "Nets of one depth and seed share their weights across plain / ResNet / beta; only skips and beta differ.",
        "Half-width: the lag (grid steps, interpolated) at which a seed's autocorrelation of df/dx first "
        "falls below 1/2, i.e. how wide the band of the Fig. 1 covariance matrix is.",
    ]


# ---------------------------------------------------------------- verdict

def _values(d: dict | None, *path: str) -> list | None:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    """Four parts, criteria fixed in the config before the run."""
    dp, dr = str(cfg.fig1_plain_depth), str(cfg.fig1_resnet_depth)
    if len(cfg.betas) < 2:
        return base.cannot_judge(f"the β part needs two betas, got betas={list(cfg.betas)}")
    b1, b2 = cfg.betas[0], cfg.betas[1]
    got = _measured(cfg, data)
    missing = [k for k, v in got.items() if v is None or len(v) == 0]
    if missing:
        return base.cannot_judge(f"depths {dp} (plain) and {dr} (ResNets β = {b1:g}, {b2:g}) and the brown-noise "
                                 f"reference must all be measured (depths={list(cfg.depths)}; missing: "
                                 f"{', '.join(missing)})")
    s = {k: stats.summary(v) for k, v in got.items()}
    diff = stats.difference(got["res_small"], got["res"])
    if any(s[k]["half"] is None for k in ("plain", "res", "res_hw")) or diff["lo"] is None:
        return base.cannot_judge("the criteria need 95% intervals: at least 2 seeds per net")
    parts = [_part_white(cfg, s), _part_brown_lag1(cfg, s), _part_band(cfg, s), _part_beta(cfg, s, diff)]
    m = {k: v["mean"] for k, v in s.items()}
    summary = (f"block {cfg.block}: {dp}-layer plain lag-1 {m['plain']:.3f}; {dr}-layer ResNet β = {b1:g} lag-1 "
               f"{m['res']:.3f}, half-width {m['res_hw']:.1f} (brown noise {m['brown']:.3f}, {m['brown_hw']:.1f}); "
               f"β = {b2:g} lag-1 {m['res_small']:.3f}.")
    numbers = {"block": cfg.block, "plain": s["plain"], "resnet": s["res"], "resnet_halfwidth": s["res_hw"],
               "resnet_small_beta": s["res_small"], "beta_difference": diff, "brown": s["brown"],
               "brown_halfwidth": s["brown_hw"]}
    context_text, context_numbers = _context(cfg, data)  # ("", None) without a measured context block
    if context_numbers is not None:
        numbers["context"] = context_numbers
    return base.verdict(parts, summary + context_text, **numbers)


def _measured(cfg: Config, data: dict[str, Any]) -> dict[str, list | None]:
    """The per-seed values the criteria read (None where not measured)."""
    dp, dr = str(cfg.fig1_plain_depth), str(cfg.fig1_resnet_depth)
    r1, r2 = kind_name(cfg.betas[0]), kind_name(cfg.betas[1])

    def at(*path: str) -> list | None:
        return _values(data, *path, "values")

    return {"plain": at("lag1", "plain", dp), "res": at("lag1", r1, dr), "res_small": at("lag1", r2, dr),
            "res_hw": at("halfwidth", r1, dr), "brown": at("noise", BROWN, "lag1"),
            "brown_hw": at("noise", BROWN, "halfwidth")}


def _part_white(cfg: Config, s: dict[str, dict]) -> dict[str, Any]:
    """1. the plain net's df/dx: lag-1 like white noise's."""
    plain, n = s["plain"], cfg.grid_points
    return base.part(f"the {cfg.fig1_plain_depth}-layer plain net's df/dx is like white noise",
                     f"lag-1 autocorrelation: mean and its 95% CI within ±{cfg.white_tol:g} "
                     f"(white noise's lag-1 on {n} points has std 1/√{n} = {1 / math.sqrt(n):.3f})",
                     plain["lo"] > -cfg.white_tol and plain["hi"] < cfg.white_tol, f"lag-1 {stats.text(plain)}")


def _part_brown_lag1(cfg: Config, s: dict[str, dict]) -> dict[str, Any]:
    """2. the ResNet's df/dx (first β): lag-1 like brown noise's."""
    floor, dr, b1 = s["brown"]["mean"] - cfg.brown_tol, cfg.fig1_resnet_depth, cfg.betas[0]
    return base.part(
        f"the {dr}-layer ResNet's (β = {b1:g}) df/dx is like brown noise: lag-1",
        f"lag-1 autocorrelation: low end of its 95% CI >= brown noise's lag-1 - {cfg.brown_tol:g}",
        s["res"]["lo"] >= floor,
        f"lag-1 {stats.text(s['res'])}; brown noise {stats.text(s['brown'])}, floor {floor:.3f}")


def _part_band(cfg: Config, s: dict[str, dict]) -> dict[str, Any]:
    """3. the ResNet's (first β) ACF half-width: as wide as brown noise's."""
    floor, dr, b1 = cfg.band_frac * s["brown_hw"]["mean"], cfg.fig1_resnet_depth, cfg.betas[0]
    return base.part(
        f"the {dr}-layer ResNet's (β = {b1:g}) correlation band is as wide as brown noise's",
        f"ACF half-width (lag where the ACF falls below 1/2): low end of its 95% CI >= {cfg.band_frac:g} x brown "
        "noise's mean half-width", s["res_hw"]["lo"] >= floor,
        f"half-width {stats.text(s['res_hw'], '.1f')} grid steps; brown noise {stats.text(s['brown_hw'], '.1f')}, "
        f"floor {floor:.1f}")


def _part_beta(cfg: Config, s: dict[str, dict], diff: dict) -> dict[str, Any]:
    """4. the second β keeps more lag-1 correlation than the first."""
    b1, b2 = cfg.betas[0], cfg.betas[1]
    return base.part(f"β = {b2:g} keeps more correlation than β = {b1:g} ({cfg.fig1_resnet_depth} layers)",
                     f"lag-1 (β = {b2:g}) minus lag-1 (β = {b1:g}): 95% CI above 0",
                     diff["lo"] > 0, f"difference {stats.text(diff)}; β = {b2:g}: lag-1 {stats.text(s['res_small'])}")


def _context(cfg: Config, data: dict[str, Any]) -> tuple[str, dict | None]:
    """The context block's ResNets (if measured): a sentence for the summary and their numbers."""
    b1, b2, dr = cfg.betas[0], cfg.betas[1], str(cfg.fig1_resnet_depth)
    r1, r2 = kind_name(b1), kind_name(b2)
    ctx = data.get("context") or {}
    c1, c2, chw = (_values(ctx, key, r, dr, "values") for key, r in (("lag1", r1), ("lag1", r2), ("halfwidth", r1)))
    if not all(v is not None and len(v) > 0 for v in (c1, c2, chw)):
        return "", None
    c1s, c2s, chws = stats.summary(c1), stats.summary(c2), stats.summary(chw)
    text = (f" Context, block {ctx.get('block')}: ResNet β = {b1:g} lag-1 {c1s['mean']:.3f}, half-width "
            f"{chws['mean']:.1f}; β = {b2:g} lag-1 {c2s['mean']:.3f}.")
    return text, {"block": ctx.get("block"), "resnet": c1s, "resnet_halfwidth": chws, "resnet_small_beta": c2s}
