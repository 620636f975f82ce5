"""Figures of the vanishing-gradient experiment, drawn from saved results only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reslab.render import save_all, subplots
from reslab.experiments.fcnets import MAX_DERIVATIVE, YANG_FACTOR, floats, log_summary

COLOURS = {"sigmoid": "tab:red", "tanh": "tab:orange", "relu": "tab:green", "relu+bn": "tab:blue"}


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """``{name: Figure}``, one per figure, drawn from ``results`` (as saved in results.json)."""
    return {"vanishing_sigmoid": _fig_sigmoid(results), "vanishing_factors": _fig_factors(results),
            "vanishing_layers": _fig_layers(results), "vanishing_ratio": _fig_ratio(results),
            **({"vanishing_bn_growth": _fig_bn(results)} if "relu+bn" in results["config"]["activations"] else {})}


def _setup(results: dict[str, Any]) -> tuple[dict, dict, list[int], list[str]]:
    cfg, data = results["config"], results["data"]
    return cfg, data, [int(d) for d in cfg["depths"]], list(cfg["activations"])


def _fig_sigmoid(results: dict[str, Any]):
    """σ and σ'; the product over L layers: measured, σ' bound alone, bound with the weights."""
    cfg, data, depths, acts = _setup(results)
    sig, ex = data["sigmoid"], data["example"]
    fig, (a, b) = subplots(1, 2, figsize=(11, 4))
    a.plot(sig["x"], sig["sigmoid"], label="σ(x)")
    a.plot(sig["x"], sig["derivative"], label="σ'(x) = σ(x)(1 − σ(x))")
    a.axhline(0.25, color="grey", ls=":")
    a.plot([sig["argmax"]], [sig["max_derivative"]], "ko")
    a.annotate(f"max {sig['max_derivative']:.3g} at x={sig['argmax']:g}", (sig["argmax"], sig["max_derivative"]),
               textcoords="offset points", xytext=(8, 8))
    a.set(xlabel="x", title="the sigmoid's derivative is at most 1/4")
    a.legend(loc="center right")
    ls = np.arange(1, max(depths + [ex["factors"]]) + 1)
    b.semilogy(ls, 0.25 ** ls, color="grey", ls="--", label="σ' bound alone, 0.25^L (weights' gain excluded)")
    if "sigmoid" in acts:
        recs = [data["nets"]["sigmoid"][str(d)] for d in depths]
        wb = [log_summary([float(np.prod(0.25 * floats(w))) for w in r["wnorm_init"]]) for r in recs]
        b.semilogy(depths, [s["geo"] for s in wb], "s-", color="black", mfc="none",
                   label="bound with measured weights, ∏ 0.25·‖W_l‖₂")
        m = [log_summary(r["act_ratio_init"]) for r in recs]
        b.errorbar(depths, [s["geo"] for s in m], yerr=_log_err(m), fmt="o", color=COLOURS["sigmoid"], capsize=3,
                   label="measured ‖∂L/∂h_0‖ / ‖∂L/∂h_L‖ (init)")
    n = ex["factors"]
    b.semilogy([n], [ex["sigma_bound"]], "*", color="grey", ms=12, label=f"claim's example: 0.25^{n}")
    b.semilogy([n], [log_summary(ex["weight_bound"])["geo"]], "*", color="black", ms=12, mfc="none",
               label=f"ten sigmoid layers: ∏_{{l≤{n}}} 0.25·‖W_l‖₂")
    b.semilogy([n], [log_summary(ex["ratio"])["geo"]], "*", color=COLOURS["sigmoid"], ms=12,
               label="ten sigmoid layers: measured ‖∂L/∂h_0‖ / ‖∂L/∂h_9‖")
    b.set(xlabel="L: sigmoid layers the gradient passes back through", ylabel="gradient factor",
          title="product over L layers (geometric mean over seeds, 95% CI)")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fig_factors(results: dict[str, Any]):
    """The per-layer backward factor and what it is made of, deepest net, mean over seeds."""
    cfg, data, depths, acts = _setup(results)
    d = max(depths)
    fig, axes = subplots(1, len(acts), figsize=(4.2 * len(acts), 3.8), squeeze=False)
    for ax, act in zip(axes[0], acts):
        rec = data["nets"][act][str(d)]
        g = np.array([floats(v) for v in rec["act_init"]])
        f = np.exp(np.log(g[:, :-1] / g[:, 1:]).mean(axis=0))
        ds = np.array([floats(v) for v in rec["dsigma_init"]]).mean(axis=0)
        w = np.array([floats(v) for v in rec["wnorm_init"]]).mean(axis=0)
        layers = np.arange(1, d + 1)
        ax.semilogy(layers, f, "o-", ms=3, color=COLOURS.get(act), label="measured ‖∂L/∂h_{l-1}‖/‖∂L/∂h_l‖")
        ax.semilogy(layers, ds, ":", color="tab:purple", label="mean σ'(z)")
        ax.semilogy(layers, w, ":", color="tab:brown", label="‖W_l‖₂")
        ax.semilogy(layers, ds * w, "--", color="black", label="mean σ'(z) · ‖W_l‖₂")
        base_act = act.removesuffix("+bn")
        if not act.endswith("+bn"):
            ax.semilogy(layers, MAX_DERIVATIVE[base_act] * w, "-", color="grey",
                        label=f"bound {MAX_DERIVATIVE[base_act]:g}·‖W_l‖₂")
        ax.axhline(1, color="grey", lw=0.5)
        ax.set(title=f"{act}, depth {d}" + (" (σ'·‖W‖ omits BN)" if act.endswith("+bn") else ""),
               xlabel="layer l (input → output)")
    axes[0][0].set_ylabel("backward factor at init")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fig_layers(results: dict[str, Any]):
    """Per-layer weight-gradient norms, at init and after training, per depth."""
    cfg, data, depths, acts = _setup(results)
    fig, axes = subplots(2, len(depths), figsize=(4 * len(depths), 7), squeeze=False)
    for col, d in enumerate(depths):
        for row, when in enumerate(("init", "trained")):
            ax = axes[row][col]
            for act in acts:
                norms = np.array([floats(v) for v in data["nets"][act][str(d)][f"norms_{when}"]])
                geo = np.exp(np.log(norms).mean(axis=0))
                ax.semilogy(np.arange(len(geo)), geo, "-", color=COLOURS.get(act), label=act)
            label = "at init" if when == "init" else f"after {cfg['steps']} SGD steps"
            ax.set(title=f"depth {d}, {label}", xlabel="Linear layer (input → output)")
            if col == 0:
                ax.set_ylabel("‖∂L/∂W_l‖ (geo. mean over seeds)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _fig_ratio(results: dict[str, Any]):
    """First/last weight-gradient ratio over depth, with the criteria's band."""
    cfg, data, depths, acts = _setup(results)
    t = cfg["threshold"]
    fig, axes = subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, when in zip(axes, ("init", "trained")):
        for act in acts:
            s = [data["summary"][act][str(d)][when] for d in depths]
            ax.errorbar(depths, [v["geo"] for v in s], yerr=_log_err(s), marker="o", capsize=3,
                        color=COLOURS.get(act), label=act)
        ax.axhline(t, color="grey", ls=":", label=f"criteria: sigmoid ≤ {t:g} ≤ ReLU, ReLU + BN")
        ax.set_yscale("log")
        label = "at init" if when == "init" else f"after {cfg['steps']} steps"
        ax.set(xlabel="depth (hidden layers)", title=f"first / last weight-gradient norm, {label}")
    axes[0].set_ylabel(f"ratio (geo. mean, 95% CI, {cfg['seeds']} seeds)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig

def _fig_bn(results: dict[str, Any]):
    """ReLU + BN: first/last weight-gradient ratio over depth at init, beside Yang et al.'s
    √(π/(π−1))^L, and after the SGD steps, beside the finding's ceiling."""
    cfg, data, depths, _ = _setup(results)
    fig, ax = subplots(1, 1, figsize=(6.4, 4.2))
    for when, marker in (("init", "o"), ("trained", "s")):
        s = [data["summary"]["relu+bn"][str(d)][when] for d in depths]
        label = "at init" if when == "init" else f"after {cfg['steps']} SGD steps"
        ax.errorbar(depths, [v["geo"] for v in s], yerr=_log_err(s), fmt=marker + "-", capsize=3,
                    color=COLOURS["relu+bn"], mfc="none" if when == "trained" else None, label=f"measured, {label}")
    ls = np.linspace(min(depths), max(depths), 50)
    ax.plot(ls, YANG_FACTOR ** ls, "k--", lw=0.8, label=f"Yang et al. 2019: √(π/(π−1))^L = {YANG_FACTOR:.3f}^L")
    ax.axhline(cfg["settled_factor"], color="grey", ls=":", label=f"finding: after training ≤ {cfg['settled_factor']:g}")
    ax.axhline(cfg["threshold"], color="tab:green", ls=":", label=f"part: no vanishing, ≥ {cfg['threshold']:g}")
    ax.set_yscale("log")
    ax.set(xlabel="depth L (hidden layers)", ylabel=f"first / last ‖∂L/∂W‖ (geo. mean, 95% CI, {cfg['seeds']} seeds)",
           title="ReLU + BN: gradient growth at init, and after training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _log_err(stats: list[dict]) -> np.ndarray:
    """Error bars of geometric means from their log10 95% half-widths (0 without one)."""
    geo = np.array([np.nan if s["geo"] is None else s["geo"] for s in stats], dtype=float)
    half = np.array([0.0 if s.get("half") is None else s["half"] for s in stats], dtype=float)
    return np.array([geo - geo / 10 ** half, geo * 10 ** half - geo])


def plot(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Save :func:`figures` as PNGs in ``out_dir``; their paths."""
    return save_all(figures(results), out_dir)
