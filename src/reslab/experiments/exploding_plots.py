"""Figures of the exploding-gradient experiment, drawn from saved results only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reslab.render import colormap, save_all, subplots
from reslab.experiments.exploding_train import max_finite
from reslab.experiments.fcnets import YANG_FACTOR, floats

COLOURS = {"gain": "tab:red", "gain+bn": "tab:blue", "raw": "tab:brown", "raw+bn": "tab:purple",
           "normalised": "tab:orange", "normalised+bn": "tab:cyan"}


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """``{name: Figure}``, one per figure, drawn from ``results`` (as saved in results.json);
    ``exploding_raw`` only when a raw-input condition was run."""
    figs = {"exploding_layers": _fig_layers(results), "exploding_steps": _fig_steps(results)}
    raw = _fig_raw(results)
    if raw is not None:
        figs["exploding_raw"] = raw
    return figs


def _setup(results: dict[str, Any]) -> tuple[dict, dict, list[int], list[str]]:
    cfg, runs = results["config"], results["data"]["runs"]
    return cfg, runs, [int(d) for d in cfg["depths"]], list(cfg["conditions"])


def _fig_layers(results: dict[str, Any]):
    """Layer-wise growth at step 0: backpropagated gradient (top) and weight gradient (bottom)."""
    cfg, runs, depths, conds = _setup(results)
    shown = [c for c in ("gain", "gain+bn", "normalised", "normalised+bn") if c in conds]
    fig, axes = subplots(2, len(depths), figsize=(4.5 * len(depths), 7), squeeze=False)
    for col, d in enumerate(depths):
        top, bottom = axes[0][col], axes[1][col]
        for c in shown:
            gain = cfg["layer_gain"] if c.startswith("gain") else cfg["init_gain"]
            act = _geo_rows([r["act_grad0"] for r in runs[c][str(d)] if r["act_grad0"]])
            if act is not None:
                top.semilogy(np.arange(len(act)), act, "o-", ms=2, color=COLOURS[c], label=f"{c} (gain {gain:g})")
            w = _geo_rows([r["layers"]["grad"][0] for r in runs[c][str(d)]
                           if r["layers"]["step"] and r["layers"]["step"][0] == 0])
            if w is not None:
                bottom.semilogy(np.arange(len(w)), w, "o-", ms=2, color=COLOURS[c], label=c)
        if "gain" in shown:
            act = _geo_rows([r["act_grad0"] for r in runs["gain"][str(d)] if r["act_grad0"]])
            if act is not None:
                ls = np.arange(len(act))
                top.semilogy(ls, act[-1] * cfg["layer_gain"] ** (ls[-1] - ls), "k--", lw=0.8,
                             label=f"expected: × {cfg['layer_gain']:g} per layer")
        if "gain+bn" in shown:
            act = _geo_rows([r["act_grad0"] for r in runs["gain+bn"][str(d)] if r["act_grad0"]])
            if act is not None:
                ls = np.arange(len(act))
                top.semilogy(ls, act[-1] * YANG_FACTOR ** (ls[-1] - ls), "k:", lw=0.8,
                             label=f"Yang et al. 2019 (BN): × {YANG_FACTOR:.3f} per layer")
        top.set(title=f"depth {d}, step 0: ‖∂L/∂h_l‖", xlabel="layer l (input → output)")
        bottom.set(title=f"depth {d}, step 0: ‖∂L/∂W_l‖", xlabel="layer l (input → output)")
    axes[0][0].set_ylabel("backpropagated gradient (geo. mean over seeds)")
    axes[1][0].set_ylabel("weight gradient (geo. mean over seeds)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("layer-wise growth: weights with gain > 1, without and with BN")
    fig.tight_layout()
    return fig


def _fig_steps(results: dict[str, Any]):
    """Total gradient norm per step; X = the step where the run turned non-finite."""
    cfg, runs, depths, conds = _setup(results)
    fig, axes = subplots(1, len(depths), figsize=(4.5 * len(depths), 3.8), squeeze=False)
    top = np.nanmax([max_finite(r) for c in conds for d in depths for r in runs[c][str(d)]] + [1.0])
    for ax, d in zip(axes[0], depths):
        for c in conds:
            for i, r in enumerate(runs[c][str(d)]):
                g = floats(r["grad_norm"])
                ax.semilogy(np.arange(len(g)), np.where(np.isfinite(g), g, np.nan), "-", lw=1,
                            color=COLOURS[c], label=c if i == 0 else None)
                if r["nonfinite"]:
                    ax.plot([r["nonfinite"]["step"]], [top * 10], "X", color=COLOURS[c], ms=9)
        ax.set(title=f"depth {d}  (X: non-finite)", xlabel="SGD step")
    axes[0][0].set_ylabel("total gradient norm")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fig_raw(results: dict[str, Any]):
    """Raw 0-255 inputs, seed 0: per layer, at the recorded steps, where the overflow happens
    (None without a raw-input condition)."""
    cfg, runs, depths, conds = _setup(results)
    raw = [c for c in ("raw", "raw+bn") if c in conds]
    if not raw:
        return None
    fig, axes = subplots(len(depths), 2, figsize=(11, 3.4 * len(depths)), squeeze=False)
    for row, d in enumerate(depths):
        for c in raw:
            r = runs[c][str(d)][0]
            lay = r["layers"]
            keep = range(len(lay["step"])) if c == "raw" else sorted({0, len(lay["step"]) - 1})
            shades = colormap("Reds" if c == "raw" else "Purples")(np.linspace(0.4, 1, len(keep)))
            for shade, k in zip(shades, keep):
                for col, key in enumerate(("grad", "act_rms")):
                    v = floats(lay[key][k])
                    axes[row][col].semilogy(np.arange(len(v)), np.where(np.isfinite(v), v, np.nan), "-o",
                                            ms=2, color=shade, label=f"{c}, step {lay['step'][k]}")
            if r["nonfinite"] and r["nonfinite"]["layer"]:
                for ax in axes[row]:
                    ax.axvline(r["nonfinite"]["layer"] - 1, color="tab:red", ls=":")
        nf = runs["raw"][str(d)][0]["nonfinite"] if "raw" in raw else None
        what = (f"raw: non-finite at step {nf['step']}, {nf['phase']} pass" if nf else "raw: finite")
        axes[row][0].set(title=f"depth {d}, seed 0: ‖∂L/∂W_l‖ ({what})", xlabel="Linear layer l")
        axes[row][1].set(title=f"depth {d}, seed 0: layer output RMS (dotted: first non-finite)",
                         xlabel="Linear layer l")
        axes[row][1].legend(fontsize=7, ncol=2)
    fig.suptitle("raw 0-255 inputs: the SGD steps before the overflow, layer by layer")
    fig.tight_layout()
    return fig

def _geo_rows(rows: list) -> np.ndarray | None:
    """Geometric mean over seeds of per-layer norms (None if no seed has any)."""
    if not rows:
        return None
    a = np.array([floats(r) for r in rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.log(a).mean(axis=0))


def plot(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Save :func:`figures` as PNGs in ``out_dir``; their paths."""
    return save_all(figures(results), out_dir)
