"""What the shattered-gradients experiment measures: df/dx over the grid per seed, its
autocorrelation (ACF), lag-1 and band half-width, the noise references, the homogeneity
traps and the ReLU activity of Fig. 3.  The judgement is in :mod:`shattered_judge`.

Seeding: the net for seed s is built right after ``torch.manual_seed(seed0 + s)``; the plain
net and the β ResNets of one depth and seed are that one net with its skips switched
(:meth:`MLP.set_skips`), so they differ only by skips and β, and per-seed values of different
kinds pair up by seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reslab.experiments import stats
from reslab.models.mlp import mlp
from reslab.probes.shattering import (autocorrelation, brown_noise, input_gradients, input_grid, relu_activity,
                                      white_noise)

BROWN, WHITE = "brown noise", "white noise"


def kind_name(beta: float | None) -> str:
    return "plain" if beta is None else f"resnet_beta={beta:g}"


def net(cfg, depth: int, seed: int, batchnorm: bool = True, bias=None, block: str | None = None):
    """Seed ``seed``'s net of ``depth`` (built plain; :func:`kinds_gradients` switches skips)."""
    torch.manual_seed(cfg.seed0 + seed)
    return mlp(depth, cfg.width, residual=False, batchnorm=batchnorm, beta=1.0,
               bias=cfg.bias if bias is None else bias, block=block or cfg.block)


def kinds_gradients(cfg, depth: int, betas: list[float | None], batchnorm: bool = True,
                    bias=None, block: str | None = None) -> dict[str, torch.Tensor]:
    """``{kind: (seeds, grid_points)}``: df/dx on the grid; one net per seed, its skips
    switched per kind (``None``: plain)."""
    x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
    out: dict[str, list] = {kind_name(b): [] for b in betas}
    for s in range(cfg.seeds):
        m = net(cfg, depth, s, batchnorm, bias, block)
        for beta in betas:
            m.set_skips(beta is not None, 1.0 if beta is None else beta)
            out[kind_name(beta)].append(input_gradients(m, x))
    return {k: torch.stack(v) for k, v in out.items()}


def gradients(cfg, depth: int, beta: float | None, batchnorm: bool = True, bias=None) -> torch.Tensor:
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


def measure(g: torch.Tensor, max_lag: int, values: bool = True) -> dict[str, Any]:
    """The ACF (mean and std over rows, lags 0..max_lag), lag-1 and half-width per row
    (their summaries, and the per-row values if ``values``)."""
    acf = autocorrelation(g).double()
    lag1, hw = acf[:, 1], half_width(acf)
    keep = (lambda v: {"values": v.tolist()}) if values else (lambda v: {})
    return {"acf": {"mean": acf[:, :max_lag + 1].mean(0), "std": acf[:, :max_lag + 1].std(0)},
            "lag1": {**stats.summary(lag1.tolist()), **keep(lag1)},
            "halfwidth": {**stats.summary(hw.tolist()), **keep(hw)}}


def noise_references(cfg) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Brown and white noise on the grid's length from ``cfg.noise_walks`` sequences (a fixed
    generator): their ACF summaries (the yardsticks), and the first ``cfg.seeds`` of each
    for Fig. 1.  A few walks make a noisy yardstick: a walk's ACF band varies a lot from walk
    to walk (its half-width's spread is about 40% of its mean), so the reference averages many."""
    gen = torch.Generator().manual_seed(cfg.seed0)
    walks = brown_noise(cfg.noise_walks, cfg.grid_points, gen)
    white = white_noise(cfg.noise_walks, cfg.grid_points, gen)
    refs = {BROWN: measure(walks, cfg.max_lag, values=False), WHITE: measure(white, cfg.max_lag, values=False)}
    return refs, {BROWN: walks[:cfg.seeds], WHITE: white[:cfg.seeds]}


def distinct_values(g: torch.Tensor, rel: float = 1e-4) -> int:
    """Distinct values of a gradient sequence, up to ``rel`` of its largest magnitude."""
    scale = float(g.abs().max()) or 1.0
    return int(torch.unique(torch.round(g / (scale * rel))).numel())


def rounded(t: torch.Tensor, digits: int = 4) -> list:
    return [[float(f"{v:.{digits}g}") for v in row] for row in t.tolist()]


def _trap_entry(g: torch.Tensor) -> dict[str, Any]:
    distinct = [distinct_values(row) for row in g]
    return {"lag1": stats.summary(autocorrelation(g, 1)[:, 1].tolist()),
            "distinct_values": {**stats.summary(distinct), "max": max(distinct)}}


def trap_labels(cfg) -> dict[str, str]:
    d = cfg.fig1_plain_depth
    return {"zero": f"{d}-layer plain, no BN, zero biases", "random": f"{d}-layer plain, no BN, random biases",
            "bn1": "1-layer, BN over the grid"}


def traps(cfg, shallow: torch.Tensor) -> dict[str, Any]:
    """Nets that cannot shatter or barely do: no BN with zero or random biases, and the
    1-layer net with BN (two-valued df/dx); plus Fig. 1's 1-layer net."""
    labels, d = trap_labels(cfg), cfg.fig1_plain_depth
    out = {labels["zero"]: _trap_entry(gradients(cfg, d, None, batchnorm=False, bias=False)),
           labels["random"]: _trap_entry(gradients(cfg, d, None, batchnorm=False, bias=True)),
           labels["bn1"]: _trap_entry(gradients(cfg, 1, None, batchnorm=True))}
    out[f"1-layer, {'BN' if cfg.shallow_batchnorm else 'no BN'} (Fig. 1)"] = _trap_entry(shallow)
    return out


def activity(cfg) -> dict[str, Any]:
    """Fig. 3: per layer of a plain net, with and without BN, the share of ReLUs active and
    co-active for a pair of inputs (mean and std over seeds), and per seed the mean over
    layers and the rise of co-activity from the first third of the layers to the last."""
    x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
    out = {}
    for label, batchnorm in (("with BN", True), ("without BN", False)):
        runs = [relu_activity(net(cfg, cfg.activity_depth, s, batchnorm), x) for s in range(cfg.seeds)]
        entry = {key: {"mean": np.mean([r[key] for r in runs], 0), "std": np.std([r[key] for r in runs], 0, ddof=1)}
                 for key in ("active", "coactive")}
        third = max(1, len(runs[0]["coactive"]) // 3)
        entry["per_seed"] = {
            "active": [float(np.mean(r["active"])) for r in runs],
            "coactive": [float(np.mean(r["coactive"])) for r in runs],
            "coactive_rise": [float(np.mean(r["coactive"][-third:]) - np.mean(r["coactive"][:third])) for r in runs]}
        out[label] = entry
    return out
