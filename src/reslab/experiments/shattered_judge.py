"""The verdict of the shattered-gradients experiment: five parts, each quoting the sentence
of Balduzzi et al. 2017 it tests, with criteria fixed here before the run; findings beyond
the claim (block layout, homogeneity traps, Fig. 3's activity, the seed article's wording);
checks of the instrument.

What of the paper could be read: its abstract (two stored copies of the paper's text), and
the paragraph on ResNets beside Fig. 2 only as quoted in a public set of reading notes.  The
rest (Fig. 3's caption and text, the block layout) was not read: see :data:`UNREAD`.
"""

from __future__ import annotations

from typing import Any

from reslab.experiments import base, stats
from reslab.experiments.shattered_findings import checks, findings, inside, values
from reslab.experiments.shattered_measure import BROWN, WHITE, kind_name
from reslab.experiments.verdicts import BALDUZZI2017, interval_status

ABSTRACT = BALDUZZI2017 + ", abstract"
RESNET_PARAGRAPH = (BALDUZZI2017 + ", the paragraph headed \"Gradients of deep resnets lie in between brown and white "
                    "noise\", beside Fig. 2 (read as quoted in public reading notes, not in the paper itself)")
Q_WHITE = ("the correlation between gradients in standard feedforward networks decays exponentially with depth "
           "resulting in gradients that resemble white noise")
Q_RESIST = ("whereas, in contrast, the gradients in architectures with skip-connections are far more resistant to "
            "shattering, decaying sublinearly")
Q_BETWEEN = ("Gradients of deep resnets lie in between brown and white noise. [...] there are still correlations in "
             "the 50-layer resnet whereas in the equivalent feedforward net, the gradients are indistinguishable from "
             "white noise.")
Q_BETA = ("Figure 2c shows the dramatic effect of recently proposed β-rescaling (Szegedy et al., 2016): the ACF of "
          "even the 50 layer network resemble brown-noise.")
UNREAD = [
    BALDUZZI2017 + ": the body text beyond the abstract; the ResNet paragraph beside Fig. 2 was read only as quoted "
    "in public reading notes",
    BALDUZZI2017 + ": Fig. 3's caption and the text on ReLU activity and co-activity with and without BN",
    BALDUZZI2017 + ": the order of Linear, BN, ReLU and β inside the residual block",
]


def _measured(cfg, data: dict) -> dict[str, list | None]:
    """The per-seed values the parts read (None where not measured)."""
    d0, dp, dr = str(min(cfg.depths)), str(cfg.fig1_plain_depth), str(cfg.fig1_resnet_depth)
    r1, r2 = kind_name(cfg.betas[0]), kind_name(cfg.betas[1])
    return {"plain": values(data, "lag1", "plain", dp, "values"),
            "plain_0": values(data, "lag1", "plain", d0, "values"),
            "plain_r": values(data, "lag1", "plain", dr, "values"),
            "res": values(data, "lag1", r1, dr, "values"), "res_0": values(data, "lag1", r1, d0, "values"),
            "res_small": values(data, "lag1", r2, dr, "values"), "res_hw": values(data, "halfwidth", r1, dr, "values")}


def _reference_ok(ref: Any) -> bool:
    return isinstance(ref, dict) and all(isinstance((ref.get(k) or {}).get("mean"), float) for k in ("lag1", "halfwidth"))


def _all(*statuses: bool | None) -> bool | None:
    return False if False in statuses else True if all(statuses) else None


def judge(cfg, data: dict[str, Any]) -> dict[str, Any]:
    """Five parts, their criteria fixed in the config before the run."""
    if len(cfg.betas) < 2:
        return base.cannot_judge(f"the β part needs two betas, got betas={list(cfg.betas)}")
    if min(cfg.depths) >= cfg.fig1_plain_depth:
        return base.cannot_judge(f"the depth trend needs a depth below {cfg.fig1_plain_depth}, got {list(cfg.depths)}")
    got = _measured(cfg, data)
    ref = {k: (data.get("noise") or {}).get(k) for k in (BROWN, WHITE)}
    missing = [k for k, v in got.items() if v is None] + [k for k, v in ref.items() if not _reference_ok(v)]
    if missing:
        return base.cannot_judge(f"depths {min(cfg.depths)}, {cfg.fig1_plain_depth} and {cfg.fig1_resnet_depth} "
                                 f"(plain and ResNets β = {cfg.betas[0]:g}, {cfg.betas[1]:g}) and the noise "
                                 f"yardsticks must all be measured (depths={list(cfg.depths)}; missing: "
                                 f"{', '.join(missing)})")
    s = {k: stats.summary(v) for k, v in got.items()}
    if any(v["half"] is None for v in s.values()):
        return base.cannot_judge("the criteria need 95% intervals: at least 2 seeds per net")
    brown, white = ref[BROWN], ref[WHITE]
    parts = [_part_white(cfg, s), _part_depth(cfg, s, got), _part_resist(cfg, got), _part_between(cfg, s, brown, white),
             _part_beta(cfg, s, got, brown)]
    m = {k: v["mean"] for k, v in s.items()}
    summary = (f"block {cfg.block} (chosen by its outcome; the other layout is a finding): "
               f"plain lag-1 {m['plain_0']:.3f} at {min(cfg.depths)} layers, {m['plain']:.3f} at {cfg.fig1_plain_depth}; "
               f"{cfg.fig1_resnet_depth}-layer ResNet β = {cfg.betas[0]:g} lag-1 {m['res']:.3f}, half-width "
               f"{m['res_hw']:.1f}, β = {cfg.betas[1]:g} lag-1 {m['res_small']:.3f}; brown noise "
               f"{brown['lag1']['mean']:.3f}, {brown['halfwidth']['mean']:.1f}.")
    numbers = {"block": cfg.block, **s, "brown": brown["lag1"], "brown_halfwidth": brown["halfwidth"],
               "white": white["lag1"]}
    return base.verdict(parts, summary, checks=checks(cfg, data), findings=findings(cfg, data, brown),
                        unread=UNREAD, **numbers)


def _part_white(cfg, s: dict) -> dict[str, Any]:
    """The plain net at the Fig. 1 depth: lag-1 like white noise's."""
    plain, n, tol = s["plain"], cfg.grid_points, cfg.white_tol
    return base.part(f"the {cfg.fig1_plain_depth}-layer plain net's df/dx is like white noise",
                     f"lag-1 autocorrelation's 95% CI over seeds inside ±{tol:g} (white noise's lag-1 on {n} "
                     f"points: about 0 ± {2 / n ** 0.5:.3f} per sequence); clear of it: contradicted",
                     inside(plain, -tol, tol), f"lag-1 {stats.text(plain)}", source=ABSTRACT, quote=Q_WHITE)


def _part_depth(cfg, s: dict, got: dict) -> dict[str, Any]:
    """The plain net whitens with depth: lag-1 at the shallowest depth above lag-1 at the Fig. 1 depth."""
    d0, dp = min(cfg.depths), cfg.fig1_plain_depth
    diff = stats.difference(got["plain_0"], got["plain"])
    return base.part(f"the plain net's df/dx whitens with depth ({d0} → {dp} layers)",
                     f"lag-1 at {d0} layers minus lag-1 at {dp}: 95% CI above 0 (below 0: contradicted)",
                     interval_status(diff), f"difference {stats.text(diff, '+.3f')}; lag-1 {s['plain_0']['mean']:.3f} "
                     f"→ {s['plain']['mean']:.3f}", source=ABSTRACT, quote=Q_WHITE)


def _part_resist(cfg, got: dict) -> dict[str, Any]:
    """The ResNet loses less lag-1 correlation with depth than the plain net (same seeds)."""
    d0, dr, b1 = min(cfg.depths), cfg.fig1_resnet_depth, cfg.betas[0]
    per_seed = [(p0 - p) - (r0 - r) for p0, p, r0, r in zip(got["plain_0"], got["plain_r"], got["res_0"], got["res"])]
    d = stats.summary(per_seed)
    return base.part(f"the ResNet (β = {b1:g}) resists shattering: it loses less lag-1 than the plain net "
                     f"from {d0} to {dr} layers",
                     f"per seed, (plain's drop in lag-1) minus (the ResNet's drop), {d0} → {dr} layers: 95% CI "
                     "above 0 (below 0: contradicted)", interval_status(d),
                     f"{stats.text(d, '+.3f')}", source=ABSTRACT, quote=Q_RESIST)


def _part_between(cfg, s: dict, brown: dict, white: dict) -> dict[str, Any]:
    """The ResNet (first β) lies between white and brown noise, by lag-1 and by band width."""
    dr, b1, tol = cfg.fig1_resnet_depth, cfg.betas[0], cfg.white_tol
    lag, hw = s["res"], s["res_hw"]
    b_lag, b_hw, w_hw = brown["lag1"]["mean"], brown["halfwidth"]["mean"], 2 * white["halfwidth"]["mean"]
    above_white = _all(True if lag["lo"] > tol else False if lag["hi"] <= tol else None,
                       True if hw["lo"] > w_hw else False if hw["hi"] <= w_hw else None)
    not_beyond_brown = lag["lo"] <= b_lag and hw["lo"] <= b_hw
    return base.part(
        f"the {dr}-layer ResNet's (β = {b1:g}) df/dx lies in between white and brown noise",
        f"lag-1's 95% CI above {tol:g} (the white-noise band) and its half-width's CI above {w_hw:.1f} (twice white "
        "noise's), and neither CI wholly above brown noise's value (lag-1, half-width); a CI inside the white-noise "
        "side or wholly beyond brown noise: contradicted",
        False if not not_beyond_brown else above_white,
        f"lag-1 {stats.text(lag)} (brown noise {b_lag:.3f}); half-width {stats.text(hw, '.1f')} grid steps (brown "
        f"noise {b_hw:.1f}, white {white['halfwidth']['mean']:.1f})", source=RESNET_PARAGRAPH, quote=Q_BETWEEN)


def _part_beta(cfg, s: dict, got: dict, brown: dict) -> dict[str, Any]:
    """β-rescaled ResNet resembles brown noise: rough no more than brown_factor x brown noise, and
    smoother than the first β (same nets, paired by seed)."""
    dr, (b1, b2), f = cfg.fig1_resnet_depth, cfg.betas[:2], cfg.brown_factor
    limit = f * (1 - brown["lag1"]["mean"])
    rough = stats.summary([1 - v for v in got["res_small"]])
    near = True if rough["hi"] <= limit else False if rough["lo"] > limit else None
    pair = stats.paired(got["res_small"], got["res"])
    return base.part(
        f"with β = {b2:g} the {dr}-layer ResNet's df/dx resembles brown noise",
        f"1 - lag-1 (β = {b2:g}): 95% CI at most {f:g} x brown noise's 1 - lag-1 (= {limit:.3f}), and lag-1 above "
        f"β = {b1:g}'s (paired 95% CI above 0); either clear on the wrong side: contradicted",
        _all(near, interval_status(pair)),
        f"1 - lag-1 {stats.text(rough)} (limit {limit:.3f}; brown noise {1 - brown['lag1']['mean']:.3f}); lag-1 "
        f"β = {b2:g} minus β = {b1:g}: {stats.paired_text(pair)}", source=RESNET_PARAGRAPH, quote=Q_BETA)

