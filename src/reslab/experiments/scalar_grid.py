"""The checks shared by the experiments on scalar-input nets over a 1-D grid of inputs
(shattered gradients, looks-linear initialisation): depths, block layout, width and grid."""

from __future__ import annotations

from reslab.errors import ReslabError
from reslab.models.mlp import BLOCKS


def check_scalar_grid(cfg) -> None:
    """``cfg.depths`` (normalised to a tuple of ints), ``block``, ``width`` and the grid
    ``grid_points`` in ``[grid_lo, grid_hi]``; one line per bad setting."""
    object.__setattr__(cfg, "depths", tuple(int(d) for d in cfg.depths))
    if not cfg.depths or min(cfg.depths) < 1:
        raise ReslabError(f"every depth must be >= 1, got {cfg.depths}")
    if cfg.block not in BLOCKS:
        raise ReslabError(f"unknown block {cfg.block!r}; valid: {', '.join(BLOCKS)}")
    if cfg.width < 1 or cfg.grid_points < 4 or not cfg.grid_lo < cfg.grid_hi:
        raise ReslabError(f"need width >= 1, grid_points >= 4, grid_lo < grid_hi; got "
                          f"{cfg.width}, {cfg.grid_points}, [{cfg.grid_lo}, {cfg.grid_hi}]")
