"""The exploding-gradient verdict: six parts of the claim, one check, three findings.

Every criterion is fixed here, before any run, from :class:`reslab.experiments.exploding.Config`
(``cfg``).  Continuous quantities are read through their 95% interval over seeds (inside the
criterion's band: shown; wholly outside: contradicted; straddling, or one seed: not resolved);
events (a run turned non-finite, an update outgrew the weights) must happen in every seed and
depth, and are shown or contradicted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reslab.experiments import base, stats
from reslab.experiments.exploding_train import (growth, layer_growth, max_update, weight_grad0, weight_ratio0,
                                                where)
from reslab.experiments.fcnets import (YANG_FACTOR, all_of, band_status, decades, floats, log_band, log_summary,
                                       num)
from reslab.experiments.verdicts import IOFFE2015, PASCANU2013, SEED_ARTICLE, YANG2019

RAW_QUOTE = ("“when your data was not normalized properly, after which during optimization gradients become very "
             "large … possibly larger than the maximum values for the data type … NaN”")
BN_QUOTE = ("“Batch Normalization combined with ReLU resolves the vanishing and exploding gradients problems "
            "to a large extent”")


# ---------------------------------------------------------------- parts

def part_growth(cfg, runs: dict) -> dict[str, Any]:
    g, tol = cfg.layer_gain, cfg.gain_tolerance
    sums = {d: stats.summary([layer_growth(r)["factor"] for r in runs["gain"][str(d)]]) for d in cfg.depths}
    return base.part(
        f"without BN, weights with gain {g:g} multiply the gradient by {g:g} at each layer toward the input",
        f"at step 0, per-layer factor of ‖∂L/∂h_l‖ toward the input (log-linear fit over l = 0..L, 95% interval "
        f"over seeds) within ±{tol:.0%} of the gain {g:g}, at every depth",
        all_of(band_status(s["lo"], s["hi"], g * (1 - tol), g * (1 + tol)) for s in sums.values()),
        "; ".join(f"L={d}: factor {stats.text(s, '.3f')}, first/last "
                  f"{decades(log_summary([layer_growth(r)['ratio'] for r in runs['gain'][str(d)]]))}"
                  for d, s in sums.items()),
        source=PASCANU2013, quote="paraphrase: backprop multiplies the gradient by each layer's weights, so with "
                                  "weights of gain above 1 it grows geometrically, layer by layer")


def part_raw_gradient(cfg, runs: dict) -> dict[str, Any]:
    f = cfg.raw_gradient_factor
    sums = {d: log_summary([weight_grad0(r, 0) / weight_grad0(n, 0)
                            for r, n in zip(runs["raw"][str(d)], runs["normalised"][str(d)])]) for d in cfg.depths}
    return base.part(
        "raw 0-255 inputs (not normalised) make the first layer's gradient very large",
        f"at step 0 (same weights and batch), first-layer ‖∂L/∂W_0‖ with raw inputs over normalised ≥ {f:g} "
        f"(95% interval over seeds, log scale), at every depth",
        all_of(log_band(s, low=f) for s in sums.values()),
        "; ".join(f"L={d}: × {decades(s)}" for d, s in sums.items()), source=SEED_ARTICLE, quote=RAW_QUOTE)


def part_raw_update(cfg, runs: dict) -> dict[str, Any]:
    u = cfg.oversize_update
    raw = runs["raw"]
    return base.part(
        "during optimisation on raw inputs, the gradient makes updates larger than the weights themselves",
        f"in every seed and depth, some SGD update before the run turns non-finite changes the first layer's "
        f"weights by ≥ {u:g}× their norm (‖ΔW_0‖/‖W_0‖)",
        _at_least([max_update(r) for d in cfg.depths for r in raw[str(d)]], u),
        "; ".join(f"L={d}: first update ‖ΔW_0‖/‖W_0‖ {_first_updates(raw[str(d)])} (normalised inputs "
                  f"{_first_updates(runs['normalised'][str(d)])}), largest {_gs([max_update(r) for r in raw[str(d)]])}, "
                  f"gradient norm up to {_gs([growth(r) for r in raw[str(d)]])}× step 0" for d in cfg.depths),
        source=SEED_ARTICLE, quote=RAW_QUOTE)


def part_raw_overflow(cfg, runs: dict) -> dict[str, Any]:
    raw = runs["raw"]
    return base.part(
        "raw inputs: training overflows to inf/NaN",
        f"in every seed and depth, the run turns non-finite within {cfg.steps} SGD steps",
        all(r["nonfinite"] is not None for d in cfg.depths for r in raw[str(d)]),
        "; ".join(f"L={d}: {_outcome(raw[str(d)])}" for d in cfg.depths), source=SEED_ARTICLE, quote=RAW_QUOTE)


def part_bn_scale(cfg, runs: dict) -> dict[str, Any]:
    tol = math.log10(1 + cfg.invariance_tolerance)
    diffs = {d: _paired_log(runs["gain+bn"][str(d)], runs["normalised+bn"][str(d)], 0) for d in cfg.depths}
    return base.part(
        f"with BN, back-propagation is unaffected by the weights' scale (gain {cfg.layer_gain:g} vs {cfg.init_gain:g})",
        f"at step 0 (same seed, weights differing by the factor {cfg.layer_gain / cfg.init_gain:g}), "
        f"‖∂L/∂h_0‖/‖∂L/∂h_L‖ with BN equal within ±{cfg.invariance_tolerance:.0%} (paired 95% interval over "
        f"seeds, log scale), at every depth",
        all_of(band_status(s["lo"], s["hi"], -tol, tol) for s in diffs.values()),
        "; ".join(f"L={d}: {_geo(_ratios(runs['gain+bn'][str(d)], 0))} vs {_geo(_ratios(runs['normalised+bn'][str(d)], 0))}"
                  f", ratio {_pct(s)}" for d, s in diffs.items()),
        source=IOFFE2015 + ", §3.3",
        quote="paraphrase: with Batch Normalization, back-propagation through a layer is unaffected by the scale "
              "of its parameters")


def part_bn_finite(cfg, runs: dict) -> dict[str, Any]:
    s = cfg.stable_factor
    recs = [r for c in ("gain+bn", "raw+bn") for d in cfg.depths for r in runs[c][str(d)]]
    return base.part(
        "BN + ReLU keeps training finite and the gradient norm level, with gain-1.5 weights and with raw inputs",
        f"in every seed and depth of both BN conditions, finite for {cfg.steps} SGD steps with the total gradient "
        f"norm ≤ {s:g}× its step-0 value",
        all(r["nonfinite"] is None and growth(r) <= s for r in recs),  # NaN growth fails
        "; ".join(f"{c} L={d}: {_outcome(runs[c][str(d)])}" for c in ("gain+bn", "raw+bn") for d in cfg.depths),
        source=SEED_ARTICLE, quote=BN_QUOTE)


# ---------------------------------------------------------------- check and findings

def check_located(cfg, runs: dict) -> dict[str, Any]:
    bad = sum(not _consistent(r, cfg.steps) for c in runs for d in cfg.depths for r in runs[c][str(d)])
    return base.check(
        "every non-finite value is caught and located",
        "every run either has a finite gradient norm at each of its steps, or stops at the step where a value "
        "turned non-finite, with every earlier step finite and the pass recorded", bad == 0,
        f"{bad} runs inconsistent")


def _consistent(rec: dict, steps: int) -> bool:
    g, nf = floats(rec["grad_norm"]), rec["nonfinite"]
    if nf is None:
        return len(g) == steps and bool(np.all(np.isfinite(g)))
    return (nf["step"] == len(g) - 1 and nf["phase"] in ("forward", "loss", "backward")
            and bool(np.all(np.isfinite(g[:-1]))))


def finding_yang(cfg, runs: dict) -> dict[str, Any]:
    tol, statuses, lines = cfg.yang_tolerance, [], []
    for c in ("gain+bn", "normalised+bn"):
        for d in cfg.depths:
            s = stats.summary([layer_growth(r, start=1)["factor"] for r in runs[c][str(d)]])
            statuses.append(band_status(s["lo"], s["hi"], YANG_FACTOR * (1 - tol), YANG_FACTOR * (1 + tol)))
            lines.append(f"{c} L={d}: {stats.text(s, '.3f')}")
    return base.finding(
        "with BN the gradient still grows toward the input at init, at Yang et al.'s rate, whatever the weights' gain",
        f"at step 0, per-layer factor of ‖∂L/∂h_l‖ (log-linear fit over l = 1..L, 95% interval over seeds) within "
        f"±{tol:.0%} of √(π/(π−1)) = {YANG_FACTOR:.3f}, at every depth, gain {cfg.layer_gain:g} and {cfg.init_gain:g}",
        all_of(statuses), "; ".join(lines),
        prediction=f"gradient explosion at init: × √(π/(π−1)) ≈ {YANG_FACTOR:.2f} per layer", source=YANG2019)


def finding_input_scale(cfg, runs: dict, raw_std: float | None) -> dict[str, Any]:
    tol = math.log10(1 + cfg.invariance_tolerance)
    diffs = {d: _paired_log(runs["raw+bn"][str(d)], runs["normalised+bn"][str(d)], 1) for d in cfg.depths}
    h0 = {d: log_summary([n["act_grad0"][0] / r["act_grad0"][0] for r, n in
                          zip(runs["raw+bn"][str(d)], runs["normalised+bn"][str(d)]) if r["act_grad0"] and n["act_grad0"]])
          for d in cfg.depths}
    return base.finding(
        "with BN, raw 0-255 inputs backpropagate like normalised ones past the first layer",
        f"at step 0, ‖∂L/∂h_1‖/‖∂L/∂h_L‖ with raw inputs equal to normalised within ±{cfg.invariance_tolerance:.0%} "
        "(paired 95% interval over seeds, log scale), at every depth",
        all_of(band_status(s["lo"], s["hi"], -tol, tol) for s in diffs.values()),
        "; ".join(f"L={d}: raw/normalised {_pct(s)}; ‖∂L/∂h_0‖ normalised/raw {decades(h0[d])}"
                  for d, s in diffs.items()) + ("" if raw_std is None else f" (raw pixels' std {raw_std:.1f})"),
        prediction="BN after the first layer removes the inputs' affine scaling; ‖∂L/∂h_0‖ shrinks by the "
                   "inputs' scale", source=IOFFE2015 + ", §3.3")


def finding_weight_level(cfg, runs: dict) -> dict[str, Any]:
    s = cfg.stable_factor
    sums = {d: log_summary([weight_ratio0(r) for r in runs["gain"][str(d)]]) for d in cfg.depths}
    return base.finding(
        f"without BN at gain {cfg.layer_gain:g}, the weight gradients ‖∂L/∂W_l‖ stay level",
        f"at step 0, first/last ‖∂L/∂W_l‖ within [1/{s:g}, {s:g}] (95% interval over seeds, log scale), at every depth",
        all_of(log_band(v, 1 / s, s) for v in sums.values()),
        "; ".join(f"L={d}: {decades(v)}" for d, v in sums.items()),
        prediction="‖∂L/∂W_l‖ = ‖∂L/∂h_l · a_{l-1}ᵀ‖: the activations grow forward by the gain as ‖∂L/∂h_l‖ "
                   "grows backward (a derivation, not a source's claim)")


# ---------------------------------------------------------------- helpers

def _at_least(values: list[float], u: float) -> bool | None:
    """Every value ≥ u: True; some value below u: False; else (a run overflowed before its
    first update, so there is none to read) None."""
    if all(v >= u for v in values):
        return True
    return False if any(v < u for v in values) else None


def _ratios(recs: list, start: int) -> list[float]:
    return [layer_growth(r, start)["ratio"] for r in recs]


def _paired_log(a: list, b: list, start: int) -> dict[str, Any]:
    """Per-seed log10 of a's step-0 ‖∂L/∂h_start‖/‖∂L/∂h_L‖ minus b's, paired by seed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return stats.paired(np.log10(_ratios(a, start)).tolist(), np.log10(_ratios(b, start)).tolist())


def _pct(d: dict) -> str:
    if d.get("mean") is None:
        return "n/a"
    half = "" if d.get("half") is None else f" ± {(10 ** d['half'] - 1):.1%}"
    return f"{10 ** d['mean']:.4f}{half} (paired, n={d['n']})"


def _first_updates(recs: list) -> str:
    return _gs([num(r["update_first"][0]) if r.get("update_first") else float("nan") for r in recs])


def _gs(values) -> str:
    return ", ".join(f"{v:.2g}" for v in values)


def _geo(values) -> str:
    g = log_summary(values)["geo"]
    return "n/a" if g is None else f"{g:.3g}"


def _outcome(recs: list[dict]) -> str:
    """Training outcome of a condition's seeds, as text."""
    bad = [where(r) for r in recs if r["nonfinite"]]
    if bad:
        return f"non-finite in {len(bad)}/{len(recs)} seeds (first: {bad[0]})"
    return f"finite, gradient norm up to {max(growth(r) for r in recs):.2g}× step 0"
