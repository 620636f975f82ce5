"""Figures of the looks-linear experiment, from the saved results alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reslab.render import save_all, subplots


def _mean(vals) -> float:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else float("nan")


def figures(results: dict[str, Any]) -> dict[str, Any]:
    data, cfg = results["data"], results["config"]
    fig, axes = subplots(1, 2, figsize=(11, 3.8))
    xs = np.linspace(cfg["grid_lo"], cfg["grid_hi"], cfg["grid_points"])
    deepest = max(cfg["depths"])
    for kind, style in (("he", "-"), ("looks-linear", "-")):
        g = data.get("example", {}).get(kind)
        if g:
            g = np.asarray(g, float)
            rms = float(np.sqrt(np.mean(g ** 2))) or 1.0
            axes[0].plot(xs, g / rms, style, lw=0.8, label=f"{kind} init")
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("df/dx / its RMS over the grid")
    axes[0].set_title(f"{deepest}-layer plain nets at init (seed 0)", fontsize=10)
    axes[0].legend(fontsize=8)
    depths = [str(d) for d in cfg["depths"]]
    for kind, key, label in (("looks-linear", "neighbour", "looks-linear: neighbour correlation"),
                             ("he", "neighbour", "He: neighbour correlation"),
                             ("he", "lag1", "He: lag-1 autocorrelation")):
        ys = [_mean(data[kind][d][key]) for d in depths if d in data.get(kind, {})]
        axes[1].plot([int(d) for d in depths][:len(ys)], ys, marker="o", label=label)
    axes[1].axhline(0, color="grey", ls=":", lw=0.8)
    axes[1].set_xscale("log")
    axes[1].set_xticks([int(d) for d in depths], [d for d in depths])
    axes[1].minorticks_off()
    axes[1].set_xlabel("depth (hidden layers)")
    axes[1].set_title("correlation of df/dx at neighbouring inputs", fontsize=10)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    figs = {"looks_linear": fig}
    training = data.get("training")
    if training and training.get("nets"):
        from reslab.experiments import degradation_plots

        figs.update(degradation_plots.figures({"config": training["config"], "data": {"nets": training["nets"]}},
                                              name="looks_linear_training"))
    return figs


def plot(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Save :func:`figures` as PNGs in ``out_dir``; their paths."""
    return save_all(figures(results), out_dir)
