"""Figures of the shattered-gradients experiment (Balduzzi et al. 2017, Figs. 1-3), drawn
from the saved results dict alone (``results["data"]`` and ``results["config"]``), so
that they can be redrawn from results.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reslab.render import save_all, subplots


def _figure(nrows: int, ncols: int, figsize: tuple[float, float], **kw):
    """A figure whose layout engine keeps tick labels, axis labels and legends inside it."""
    fig, axes = subplots(nrows, ncols, figsize=figsize, squeeze=False, **kw)
    fig.set_layout_engine("constrained")
    return fig, axes


def _shared_legend(fig, axes, ncol: int) -> None:
    """One legend below the panels with every labelled curve of every panel, once each."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=ncol, fontsize=8)


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """``{name: Figure}``: the paper's Figs. 1-3, in that order."""
    return {"shattered_fig1_gradients": _fig_gradients(results),
            "shattered_fig2_autocorrelation": _fig_autocorrelation(results),
            "shattered_fig3_relu_activity": _fig_relu_activity(results)}


def _fig_gradients(results: dict[str, Any]):
    """Fig. 1: gradient curves (seed 0) and covariance over seeds."""
    data, cfg = results["data"], results["config"]
    panels = data["fig1"]
    fig, axes = _figure(2, len(panels), figsize=(3.2 * len(panels), 6.4))
    xs = np.linspace(cfg["grid_lo"], cfg["grid_hi"], cfg["grid_points"])
    for j, (name, grads) in enumerate(panels.items()):
        g = np.asarray(grads, float)
        axes[0, j].plot(xs, g[0], lw=0.8)
        axes[0, j].set_title(f"{name}\nlag-1 {data['fig1_lag1'][name]['mean']:.2f}", fontsize=9)
        axes[0, j].set_xlabel("x" if "noise" not in name else "index (rescaled)")
        z = (g - g.mean(1, keepdims=True)) / np.where(g.std(1, keepdims=True) > 0, g.std(1, keepdims=True), 1)
        axes[1, j].imshow(z.T @ z / len(z), cmap="RdBu_r", vmin=-1, vmax=1)
        axes[1, j].set_xticks([]), axes[1, j].set_yticks([])
    axes[0, 0].set_ylabel("df/dx (seed 0)")
    axes[1, 0].set_ylabel(f"covariance over {len(g)} seeds")
    fig.suptitle(f"Shattered gradients (Balduzzi et al. Fig. 1); BN {cfg['bn']}, block {cfg.get('block', 'preact')}",
                 fontsize=10)
    return fig


def _fig_autocorrelation(results: dict[str, Any]):
    """Fig. 2: autocorrelation functions over depth, per kind; lag-1 over depth."""
    data, cfg = results["data"], results["config"]
    kinds = [k for k in data["acf"] if "noise" not in k]
    context = data.get("context") or {}
    fig, axes = _figure(1, len(kinds) + 1, figsize=(3.5 * (len(kinds) + 1), 4.2))
    axes = axes[0]
    for ax, kind in zip(axes, kinds):
        for i, (depth, acf) in enumerate(data["acf"][kind].items()):
            ax.plot(acf["mean"], color=f"C{i}", label=f"L = {depth}")
        for depth, acf in context.get("acf", {}).get(kind, {}).items():
            ax.plot(acf["mean"], "r-.", lw=0.9, label=f"L = {depth}, {context['block']} block")
        for noise, style in (("brown noise", ":"), ("white noise", "--")):
            ax.plot(data["acf"][noise]["mean"], "k" + style, lw=0.8, label=noise)
        ax.set_title(kind.replace("_", " "), fontsize=10)
        ax.set_xlabel("lag (grid steps)")
        ax.set_ylim(-0.2, 1.02)
    axes[0].set_ylabel(f"autocorrelation (mean of {cfg['seeds']} seeds)")
    _lag1_panel(axes[-1], data, cfg, kinds)
    _shared_legend(fig, axes, ncol=6)
    return fig


def _lag1_panel(ax, data: dict[str, Any], cfg: dict[str, Any], kinds: list[str]) -> None:
    import matplotlib.ticker

    for i, kind in enumerate(kinds):
        d = data["lag1"][kind]
        ax.errorbar([int(k) for k in d], [d[k]["mean"] for k in d], yerr=[d[k].get("half") or 0 for k in d],
                    marker="o", ms=4, capsize=2, color=f"C{len(cfg['depths']) + i}", label=kind.replace("_", " "))
    ax.axhspan(-cfg["white_tol"], cfg["white_tol"], color="0.85", label="white-noise band")
    if "noise" in data:
        ax.axhline(data["noise"]["brown noise"]["lag1"]["mean"], color="k", ls=":", lw=0.8, label="brown noise")
    ax.set_xscale("log"), ax.set_xlabel("depth L (hidden layers)"), ax.set_ylabel("lag-1 autocorrelation (95% CI)")
    ax.set_title("lag-1 over depth", fontsize=10)
    ax.set_xticks(cfg["depths"], [str(d) for d in cfg["depths"]])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _fig_relu_activity(results: dict[str, Any]):
    """Fig. 3: ReLU activity per layer, with and without BN."""
    data, cfg = results["data"], results["config"]
    fig, axes = _figure(1, 2, figsize=(8.5, 3.8), sharey=True)
    axes = axes[0]
    for ax, key, ref in ((axes[0], "active", 0.5), (axes[1], "coactive", 0.25)):
        for i, (label, act) in enumerate(data["activity"].items()):
            mean, std = np.asarray(act[key]["mean"]), np.asarray(act[key]["std"])
            layers = np.arange(1, len(mean) + 1)
            ax.plot(layers, mean, color=f"C{i}", label=f"{label} (mean ± std over seeds)")
            ax.fill_between(layers, mean - std, mean + std, color=f"C{i}", alpha=0.25)
        ax.axhline(ref, color="k", ls=":", lw=0.8, label=f"{'1/2' if key == 'active' else '1/4'} (expected with BN)")
        ax.set_title(f"share of ReLUs {'active' if key == 'active' else 'co-active for a pair of inputs'}",
                     fontsize=9)
        ax.set_xlabel(f"layer of a {cfg['activity_depth']}-layer plain net")
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("share of ReLUs")
    return fig


def plot(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Save :func:`figures` as PNGs in ``out_dir``; their paths."""
    return save_all(figures(results), out_dir)
