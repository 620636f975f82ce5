"""Findings and checks of the shattered-gradients verdict (:mod:`shattered_judge`): measured
facts the claim does not make, each with its own fixed criterion, and identities the
instrument must satisfy.  None of them changes the outcome."""

from __future__ import annotations

import math
from typing import Any

from reslab.experiments import base, stats
from reslab.experiments.shattered_measure import BROWN, WHITE, kind_name, trap_labels
from reslab.experiments.verdicts import BALDUZZI2017, SEED_ARTICLE, interval_status

Q_SEED = "ResNet gradient similarity resembles that of brown noise"
FIG3 = BALDUZZI2017 + ", Fig. 3 (not read; as described in secondhand summaries)"
FEW_VALUES = 3       # "a few values": two pieces (x < 0, x > 0) and one rounding tie
WEAK_LAG1 = 0.5      # random biases, no BN: lag-1 above this is closer to brown noise than to white


def values(d: Any, *path: str) -> list | None:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d if isinstance(d, list) and d else None


def inside(s: dict, lo: float, hi: float) -> bool | None:
    """An interval inside (lo, hi): True; wholly outside: False; straddling an edge: None."""
    if s.get("lo") is None:
        return None
    if s["lo"] > lo and s["hi"] < hi:
        return True
    return False if s["lo"] >= hi or s["hi"] <= lo else None


def findings(cfg, data: dict[str, Any], brown: dict) -> list[dict[str, Any]]:
    out = [*_layout(cfg, data), _seed_article(cfg, data, brown), *_traps(cfg, data), *_activity(cfg, data)]
    return [f for f in out if f is not None]


def _layout(cfg, data: dict) -> list[dict]:
    """The judged block layout against the other one, same Linear weights per seed."""
    dr, b1 = str(cfg.fig1_resnet_depth), cfg.betas[0]
    ctx = data.get("context") or {}
    other, judged = values(ctx, "lag1", kind_name(b1), dr, "values"), values(data, "lag1", kind_name(b1), dr, "values")
    if other is None or judged is None:
        return []
    d = stats.paired(judged, other)
    small = [values(src, "lag1", kind_name(cfg.betas[-1]), dr, "values") or [math.nan] for src in (data, ctx)]
    return [base.finding(
        f"block layout: {cfg.block} keeps more lag-1 correlation than {ctx.get('block')} ({dr} layers, β = {b1:g})",
        f"lag-1 ({cfg.block}) minus lag-1 ({ctx.get('block')}), same weights per seed: paired 95% CI above 0",
        interval_status(d),
        f"{stats.paired_text(d)}; lag-1 {stats.summary(judged)['mean']:.3f} vs {stats.summary(other)['mean']:.3f} "
        f"(β = {cfg.betas[-1]:g}: {stats.summary(small[0])['mean']:.3f} vs {stats.summary(small[1])['mean']:.3f}).  "
        f"The default layout ({cfg.block}) was chosen by this outcome: it is the layout whose {dr}-layer gradient "
        "looks like Fig. 1(c); the paper's own layout was not read")]


def _seed_article(cfg, data: dict, brown: dict) -> dict | None:
    """The seed article's looser wording, at β = betas[0]: the ResNet resembles brown noise."""
    dr, b1 = str(cfg.fig1_resnet_depth), cfg.betas[0]
    res = values(data, "lag1", kind_name(b1), dr, "values")
    if res is None or len(res) < 2:
        return None
    limit = cfg.brown_factor * (1 - brown["lag1"]["mean"])
    rough = stats.summary([1 - v for v in res])
    return base.finding(
        f"the seed article's wording at β = {b1:g}: the {dr}-layer ResNet's df/dx resembles brown noise",
        f"1 - lag-1: 95% CI at most {cfg.brown_factor:g} x brown noise's (= {limit:.3f}), the criterion of the β part",
        True if rough["hi"] <= limit else False if rough["lo"] > limit else None,
        f"1 - lag-1 {stats.text(rough)} (limit {limit:.3f}); Balduzzi et al. say 'in between' at β = 1 and "
        "'resemble brown-noise' with β-rescaling", prediction=Q_SEED, source=SEED_ARTICLE)


def _traps(cfg, data: dict) -> list[dict]:
    """Homogeneity traps: nets without BN, and the 1-layer net with BN."""
    traps, labels = data.get("traps") or {}, trap_labels(cfg)
    out = []
    for key, why in (("zero", "positively homogeneous: on a scalar input df/dx has two pieces (x < 0, x > 0)"),
                     ("bn1", "BN removes each unit's bias and scale, so all units switch at the grid mean")):
        t = traps.get(labels[key])
        if t:
            n = t["distinct_values"].get("max", t["distinct_values"]["mean"])
            out.append(base.finding(f"{labels[key]}: df/dx takes a few values, so it cannot shatter",
                                    f"at most {FEW_VALUES} distinct values of df/dx on every seed", n <= FEW_VALUES,
                                    f"at most {n:g} distinct values over {t['distinct_values']['n']} seeds",
                                    prediction=why))
    t = traps.get(labels["random"])
    if t and t["lag1"].get("lo") is not None:
        out.append(base.finding(f"{labels['random']}: shattering is weak",
                                f"lag-1 95% CI above {WEAK_LAG1:g} (closer to brown noise than to white)",
                                True if t["lag1"]["lo"] > WEAK_LAG1 else False if t["lag1"]["hi"] < WEAK_LAG1 else None,
                                f"lag-1 {stats.text(t['lag1'])}"))
    return out


def _activity(cfg, data: dict) -> list[dict]:
    """Fig. 3: with BN half the ReLUs active, a quarter co-active; without BN co-activity climbs."""
    act, tol, out = data.get("activity") or {}, cfg.activity_tol, []
    bn = (act.get("with BN") or {}).get("per_seed")
    pred = ("with BN about half of the ReLUs are active and a pair of inputs finds about a quarter co-active; "
            "without BN co-activity rises with depth")
    for key, target in (("active", 0.5), ("coactive", 0.25)):
        if bn and len(bn[key]) > 1:
            s = stats.summary(bn[key])
            out.append(base.finding(f"with BN, the share of ReLUs {'active' if key == 'active' else 'co-active for a pair of inputs'} "
                                    f"is about {'1/2' if target == 0.5 else '1/4'} ({cfg.activity_depth}-layer plain net)",
                                    f"mean over layers, 95% CI over seeds inside {target:g} ± {tol:g}",
                                    inside(s, target - tol, target + tol), stats.text(s), prediction=pred, source=FIG3))
    nobn = (act.get("without BN") or {}).get("per_seed")
    if nobn and len(nobn["coactive_rise"]) > 1:
        s = stats.summary(nobn["coactive_rise"])
        out.append(base.finding(f"without BN, co-activity climbs with depth ({cfg.activity_depth}-layer plain net)",
                                "co-activity of the last third of the layers minus the first third: 95% CI above 0",
                                interval_status(s), stats.text(s, "+.3f"), prediction=pred, source=FIG3))
    return out


def checks(cfg, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Identities: ACF(0) = 1; co-activity <= activity; the white-noise yardstick's lag-1 is -1/n."""
    acf0 = [a["mean"][0] for kind in (data.get("acf") or {}).values()
            for a in ((kind,) if "mean" in kind else kind.values())]
    out = [base.check("autocorrelation at lag 0 is 1", "every stored mean ACF starts at 1",
                      all(abs(v - 1) < 1e-6 for v in acf0), f"{len(acf0)} ACFs, lag 0 in "
                      f"[{min(acf0):.6f}, {max(acf0):.6f}]")] if acf0 else []
    act = data.get("activity") or {}
    gaps = [c - a for v in act.values() for a, c in zip(v["active"]["mean"], v["coactive"]["mean"])]
    if gaps:
        out.append(base.check("co-activity never exceeds activity", "k(k-1)/(N(N-1)) <= k/N on every layer",
                              max(gaps) <= 1e-9, f"largest co-active minus active {max(gaps):+.3f}"))
    w = ((data.get("noise") or {}).get(WHITE) or {}).get("lag1") or {}
    if w.get("std") is not None:
        n, bound = cfg.grid_points, 5 * w["std"] / math.sqrt(w["n"])
        out.append(base.check("white-noise yardstick's lag-1 is -1/n", f"|mean + 1/{n}| within 5 standard errors",
                              abs(w["mean"] + 1 / n) <= bound, f"{w['mean']:+.4f} (bound ±{bound:.4f})"))
    b = ((data.get("noise") or {}).get(BROWN) or {}).get("lag1") or {}
    if b.get("mean") is not None:
        out.append(base.check("brown-noise yardstick is smoother than white", "brown lag-1 above white's",
                              b["mean"] > w.get("mean", 1.0), f"{b['mean']:.3f} vs {w.get('mean', math.nan):+.3f}"))
    return out
