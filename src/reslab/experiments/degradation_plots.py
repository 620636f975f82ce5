"""Figures of the degradation experiment, from saved results only.

* ``degradation.png``: He et al. Fig. 6 style, one panel per kind (plain, residual):
  training error (thin, dashed: mean over seeds, shaded: lowest to highest seed) and
  test error (bold: mean over seeds) against iterations, one colour per depth.
* ``degradation_final.png``: each seed's final training error per net (dots), with the
  mean and its 95% confidence interval: the numbers the verdict judges.
* ``degradation_constructed.png``: per seed, the training error of plain-20, of plain-20 plus
  identity layers (a plain-56 computing the same function) and of plain-56 trained from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reslab.experiments import stats
from reslab.render import colormap, save_all, subplots


def _by_kind(nets: dict) -> dict[str, list[tuple[int, dict]]]:
    out: dict[str, list[tuple[int, dict]]] = {}
    for n in sorted(nets.values(), key=lambda n: n["depth"]):
        out.setdefault(n["kind"], []).append((n["depth"], n))
    return out


def _stack(runs: list[dict], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Curves of all seeds on their common iterations: (x, seeds x points)."""
    n = min(len(r["curve"][x_key]) for r in runs)
    x = np.asarray(runs[0]["curve"][x_key][:n], float)
    y = np.asarray([[np.nan if v is None else v for v in r["curve"][y_key][:n]] for r in runs], float)
    return x, y


TITLES = {"plain": "plain nets", "resnet": "residual nets", "plain-ll": "plain nets, looks-linear init"}


def figures(results: dict[str, Any], name: str = "degradation") -> dict[str, Any]:
    """He et al. Fig. 6-style curves and the per-seed final errors: ``{name: Figure}``."""

    cfg, nets = results["config"], results["data"]["nets"]
    kinds = _by_kind(nets)
    depths = sorted({n["depth"] for n in nets.values()})
    colour = {d: colormap("viridis_r")(0.15 + 0.7 * i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    figs = {}

    fig, axes = subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), sharey=True, squeeze=False)
    for ax, (kind, rows) in zip(axes[0], kinds.items()):
        for depth, n in rows:
            c = colour[depth]
            x, y = _stack(n["runs"], "iteration", "train_error")
            for seed_curve in y:  # each seed, thin
                ax.plot(x, seed_curve, "-", lw=0.5, color=c, alpha=0.35)
            ax.plot(x, y.mean(0), "--", lw=1.4, color=c)
            if len(y) > 1:
                sd = y.std(0, ddof=1)
                ax.fill_between(x, y.mean(0) - sd, y.mean(0) + sd, color=c, alpha=0.15, lw=0)
            xe, ye = _stack(n["runs"], "eval_iteration", "test_error")
            if len(xe):
                ax.plot(xe, np.nanmean(ye, 0), "-o", lw=2.2, ms=3.5, color=c, label=f"{kind}-{depth}")
        ax.set_title(f"{TITLES.get(kind, kind)}, {len(rows[0][1]['runs'])} seed(s)")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("error (thin: each seed's training; dashed: mean,\nband: ± 1 s.d. over seeds; bold: test)")
    fig.suptitle(f"{name.replace('_', ' ').capitalize()}: {cfg['dataset']}, {cfg['iterations']} iterations of {cfg['batch_size']}, "
                 f"width {cfg['width']:g}, recipe {cfg['recipe']}")
    fig.tight_layout()
    figs[name] = fig

    fig, ax = subplots(figsize=(1.2 + 1.1 * len(nets), 3.8))
    order = [n for rows in kinds.values() for _, n in rows]
    for i, n in enumerate(order):
        vals = [r["final_train_error"] for r in n["runs"]]
        s = stats.summary(vals)
        ax.plot(np.full(len(vals), i, float) + np.linspace(-0.12, 0.12, len(vals)), vals, "o", ms=4,
                color=colour[n["depth"]], alpha=0.7)
        if s["half"] is not None:
            ax.errorbar(i + 0.3, s["mean"], yerr=s["half"], fmt="_", ms=14, color="k", capsize=4)
        elif s["mean"] is not None:
            ax.plot(i + 0.3, s["mean"], "_", ms=14, color="k")
    ax.set_xticks(range(len(order)), [f"{n['kind']}-{n['depth']}" for n in order])
    ax.set_ylabel("final training error")
    ax.set_title("per seed (dots); mean ± 95% CI (black)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    figs[f"{name}_final"] = fig
    c = results["data"].get("constructed")
    if c:
        figs[f"{name}_constructed"] = _constructed_figure(c)
    return figs


def _constructed_figure(c: dict[str, Any]):
    """Per seed: the shallow plain net, the constructed deep one (the same function) and the
    deep one the solver found; lines join one seed's three nets."""
    rows = c["per_seed"]
    keys = [("shallow_train_error", c.get("shallow", "shallow")), ("constructed_train_error", "constructed " + c.get("deep", "")),
            ("scratch_train_error", c.get("deep", "deep") + " from scratch")]
    fig, ax = subplots(figsize=(5.2, 3.8))
    for r in rows:
        ax.plot(range(3), [r[k] for k, _ in keys], "-o", ms=4, lw=0.8, alpha=0.7)
    ax.set_xticks(range(3), [label for _, label in keys])
    ax.set_ylabel("training error (eval-mode BN, no augmentation)")
    ax.set_title("He et al. §1: the constructed solution vs the solver's")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot(results: dict[str, Any], out_dir: str | Path, name: str = "degradation") -> list[Path]:
    """Save :func:`figures` as ``NAME.png`` and ``NAME_final.png`` in ``out_dir``; their paths."""
    return save_all(figures(results, name), out_dir)
