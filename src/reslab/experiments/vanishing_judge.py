"""The vanishing-gradient verdict: four parts of the claim, two checks, two findings.

Every criterion is fixed here, before any run, from :class:`reslab.experiments.vanishing.Config`
(``cfg``).  Ratios are first/last Linear weight-gradient norms, ``‖∂L/∂W_0‖/‖∂L/∂W_L‖``, one per
seed; a criterion reads their 95% interval over seeds on a log scale (:func:`fcnets.log_band`):
inside the criterion's band: shown; wholly outside: contradicted; straddling a bound, or one
seed (no interval): not resolved.  The checks are identities of the measurement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reslab.experiments import base, stats
from reslab.experiments.fcnets import (YANG_FACTOR, all_of, band_status, decades, fit_factor, floats, log_band,
                                       log_summary)
from reslab.experiments.verdicts import SEED_ARTICLE, YANG2019
from reslab.experiments.vanishing_probe import factors, ratio, weight_bound

BN_QUOTE = ("“Batch Normalization combined with ReLU resolves the vanishing and exploding gradients problems "
            "to a large extent”")


# ---------------------------------------------------------------- parts

def part_sigmoid_vanishes(cfg, nets: dict) -> dict[str, Any]:
    t = cfg.threshold
    return base.part(
        "deep sigmoid nets: the first layer's gradient is orders of magnitude below the last's",
        f"first/last weight-gradient norm ≤ {t:g} (two orders of magnitude) {_every(cfg)}",
        all_of(log_band(s, high=t) for s in _summaries(cfg, nets, "sigmoid").values()),
        _ratios_text(cfg, nets, "sigmoid"), source=SEED_ARTICLE,
        quote="paraphrase: the sigmoid's derivative is at most 0.25, so deep sigmoid nets starve their first "
              "layers of gradient")


def part_example(cfg, ex: dict) -> dict[str, Any]:
    r, wb = log_summary(ex["ratio"]), log_summary(ex["weight_bound"])
    off = log_summary([v / ex["sigma_bound"] for v in floats(ex["ratio"])])
    f = cfg.about_factor
    return base.part(
        f"ten sigmoid layers multiply the gradient by about 0.25^9 ≈ {ex['sigma_bound']:.2g}",
        f"in a net of ten sigmoid layers at init, ‖∂L/∂h_0‖/‖∂L/∂h_9‖ over 0.25^9 (95% interval over seeds, "
        f"log scale) within [1/{f:g}, {f:g}] (\"about\": the same order of magnitude)",
        log_band(off, 1 / f, f),
        f"measured {decades(r)}, i.e. {decades(off)} × 0.25^9; bound with the measured weights "
        f"∏0.25·‖W_l‖₂ {_g(wb['geo'])}; per layer: measured factor {_mean(ex['mean_factor']):.3f} = mean σ'(z) "
        f"{_mean(ex['mean_dsigma']):.3f} × weights (‖W_l‖₂ {_mean(ex['mean_wnorm']):.2f}) vs 0.25 alone",
        source=SEED_ARTICLE, quote="paraphrase: ten sigmoid layers multiply the gradient by about 0.25^9")


def part_relu(cfg, nets: dict, act: str) -> dict[str, Any]:
    """ReLU (no BN) or ReLU + BN: no vanishing.  One-sided: the claim is about the first
    layer's gradient collapsing; growth is a different effect (Yang et al.; a finding)."""
    t = cfg.threshold
    bn = act == "relu+bn"
    why = ("\"resolves the vanishing problem to a large extent\" is read as: not orders of magnitude below, "
           "the mirror of the sigmoid part's ≤ " if bn else "\"avoids this\" is read as: not orders of "
           "magnitude below, the mirror of the sigmoid part's ≤ ")
    return base.part(
        ("ReLU + BN resolves the vanishing of the first layer's gradient" if bn
         else "ReLU (no BN) avoids the vanishing of the first layer's gradient"),
        f"first/last weight-gradient norm ≥ {t:g} {_every(cfg)}; {why}{t:g}. One-sided: growth of the first "
        "layer's gradient is not vanishing" + (" (with BN it is Yang et al.'s, reported as a finding)" if bn else ""),
        all_of(log_band(s, low=t) for s in _summaries(cfg, nets, act).values()),
        _ratios_text(cfg, nets, act), source=SEED_ARTICLE,
        quote=BN_QUOTE if bn else "paraphrase: ReLU avoids this (the sigmoid's starving of the first layers)")


# ---------------------------------------------------------------- checks

def check_derivative(cfg, sig: dict) -> dict[str, Any]:
    ok = bool(abs(sig["max_derivative"] - 0.25) < 1e-12 and abs(sig["argmax"]) < 1e-9
              and max(floats(sig["derivative"])) <= 0.25)
    return base.check(
        "the sigmoid's derivative is at most 0.25, at 0",
        f"max of σ'(x) (autograd, float64) on {cfg.sigmoid_points} points in [-{cfg.sigmoid_range:g}, "
        f"{cfg.sigmoid_range:g}] equals 0.25 within 1e-12, at x = 0", ok,
        f"max σ'(x) = {sig['max_derivative']:.12g} at x = {sig['argmax']:g}")


def check_product_bound(cfg, nets: dict) -> dict[str, Any]:
    viol, lines = 0, []
    for d in cfg.depths:
        rec = nets["sigmoid"][str(d)]
        for a, w in zip(rec["act_init"], rec["wnorm_init"]):
            viol += int(np.sum(~(factors(a) <= 0.25 * floats(w) * (1 + 1e-9))))  # NaN counts as a violation
            viol += int(not ratio(a) <= weight_bound(w, "sigmoid") * (1 + 1e-9))
        meas = log_summary([ratio(a) for a in rec["act_init"]])
        wb = log_summary([weight_bound(w, "sigmoid") for w in rec["wnorm_init"]])
        lines.append(f"L={d}: measured {decades(meas)}, bound {_g(wb['geo'])}, 0.25^L alone {0.25 ** d:.2g}")
    wn = floats([w for d in cfg.depths for ws in nets["sigmoid"][str(d)]["wnorm_init"] for w in ws[:-1]])
    return base.check(
        "backprop through L sigmoid layers multiplies the gradient by at most ∏ 0.25·‖W_l‖₂",
        "in every sigmoid net at init, each backward factor ‖∂L/∂h_{l-1}‖/‖∂L/∂h_l‖ ≤ 0.25·‖W_l‖₂ and "
        "‖∂L/∂h_0‖/‖∂L/∂h_L‖ ≤ ∏ 0.25·‖W_l‖₂", viol == 0,
        f"{viol} violations. " + "; ".join(lines) + f". Hidden weights' ‖W_l‖₂ = {wn.mean():.2f} on average "
        "(He init), so 0.25^L alone, the weights' gain left out, is below the measured ratios")


# ---------------------------------------------------------------- findings

def finding_yang(cfg, nets: dict) -> dict[str, Any]:
    tol, statuses, lines = cfg.yang_tolerance, [], []
    for d in cfg.depths:
        s = stats.summary([fit_factor(a, start=1) for a in nets["relu+bn"][str(d)]["act_init"]])
        statuses.append(band_status(s["lo"], s["hi"], YANG_FACTOR * (1 - tol), YANG_FACTOR * (1 + tol)))
        lines.append(f"L={d}: {stats.text(s, '.3f')} per layer, first/last weight gradient "
                     f"{decades(log_summary(nets['relu+bn'][str(d)]['ratio_init']))} (√(π/(π−1))^L = "
                     f"{YANG_FACTOR ** d:.2g})")
    return base.finding(
        "ReLU + BN nets grow the gradient toward the input at init, at Yang et al.'s rate",
        f"at init, per-layer factor of ‖∂L/∂h_l‖ toward the input (log-linear fit over l = 1..L, 95% interval "
        f"over seeds) within ±{tol:.0%} of √(π/(π−1)) = {YANG_FACTOR:.3f}, at every depth",
        all_of(statuses), "; ".join(lines),
        prediction=f"gradient explosion at init: × √(π/(π−1)) ≈ {YANG_FACTOR:.2f} per layer", source=YANG2019)


def finding_settles(cfg, nets: dict) -> dict[str, Any]:
    c = cfg.settled_factor
    grown = math.ceil(math.log(c) / math.log(YANG_FACTOR))  # the depth from which √(π/(π−1))^L > c
    sums = {d: log_summary(nets["relu+bn"][str(d)]["ratio_trained"]) for d in cfg.depths if d >= grown}
    return base.finding(
        f"ReLU + BN: the growth at init is gone after {cfg.steps} SGD steps",
        f"after {cfg.steps} SGD steps, first/last weight-gradient norm ≤ {c:g} (95% interval over seeds) at "
        f"every depth L ≥ {grown}, where at init √(π/(π−1))^L exceeds {c:g}",
        all_of(log_band(s, high=c) for s in sums.values()),
        "; ".join(f"L={d}: {decades(s)} (at init "
                  f"{decades(log_summary(nets['relu+bn'][str(d)]['ratio_init']))})" for d, s in sums.items())
        or f"no depth ≥ {grown} was run",
        prediction="Yang et al.'s explosion is a property of the net at init", source=YANG2019)


# ---------------------------------------------------------------- helpers

def _summaries(cfg, nets: dict, act: str) -> dict[tuple[str, int], dict]:
    """Per (init|trained, depth): the log summary of the seeds' first/last weight-gradient ratios."""
    return {(when, d): log_summary(nets[act][str(d)][f"ratio_{when}"]) for when in ("init", "trained")
            for d in cfg.depths}


def _ratios_text(cfg, nets: dict, act: str) -> str:
    s = _summaries(cfg, nets, act)
    return "; ".join(f"{'init' if w == 'init' else f'after {cfg.steps} steps'} "
                     + ", ".join(f"L={d} {decades(s[(w, d)])}" for d in cfg.depths) for w in ("init", "trained"))


def _every(cfg) -> str:
    return f"(95% interval over seeds, log scale) at every depth, at init and after {cfg.steps} SGD steps"


def _g(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2g}"


def _mean(v) -> float:
    return float(np.nanmean(floats(v))) if len(v) else float("nan")
