"""The at-init half of :mod:`reslab.experiments.looks_linear`: df/dx over the grid of each
looks-linear and He-initialised scalar net, per depth and seed, reduced to the numbers the
judge reads (relative spread, lag-1 autocorrelation, neighbour correlation)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from reslab.models.mlp import mlp
from reslab.probes.shattering import input_gradients, input_grid, lag1_autocorrelation

KINDS = ("looks-linear", "he")


def curve_numbers(g: torch.Tensor) -> dict[str, float | None]:
    """Relative spread, lag-1 autocorrelation (None if constant) and neighbour correlation
    (None if df/dx is 0 everywhere: 0/0, not 0, which would read as white noise)."""
    g = g.double()
    spread = float(g.std() / g.abs().mean().clamp_min(1e-300))
    lag1 = None if spread < 1e-9 else float(lag1_autocorrelation(g))
    if not bool(g.abs().max() > 0):
        return {"spread": spread, "lag1": lag1, "neighbour": None}
    nb = float((g[1:] * g[:-1]).sum() / ((g[1:].square().sum() * g[:-1].square().sum()).sqrt().clamp_min(1e-300)))
    return {"spread": spread, "lag1": lag1, "neighbour": nb}


def net(cfg: Any, kind: str, depth: int, seed: int):
    """Seed ``seed``'s scalar net of ``kind`` (``looks-linear`` or ``he``) for the looks-linear config ``cfg``."""
    torch.manual_seed(cfg.seed0 + seed)
    return mlp(depth, cfg.width, batchnorm=cfg.batchnorm, block=cfg.block,
               init="looks-linear" if kind == "looks-linear" else "he")


def at_init(cfg: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """``{kind: {depth: {"spread": [...], "lag1": [...], "neighbour": [...]}}, "example": {kind: df/dx}}``;
    the global RNG is left as it was."""
    x = input_grid(cfg.grid_points, cfg.grid_lo, cfg.grid_hi)
    data: dict[str, Any] = {k: {} for k in KINDS}
    data["example"] = {}
    with torch.random.fork_rng(devices=[]):
        for depth in cfg.depths:
            say(f"depth {depth}: df/dx of {cfg.seeds} looks-linear and He-initialised plain nets")
            for kind in KINDS:
                rows = []
                for s in range(cfg.seeds):
                    g = input_gradients(net(cfg, kind, depth, s), x)
                    rows.append(curve_numbers(g))
                    if s == 0 and depth == max(cfg.depths):
                        data["example"][kind] = [round(float(v), 6) for v in g]
                data[kind][str(depth)] = {key: [r[key] for r in rows] for key in ("spread", "lag1", "neighbour")}
    return data
