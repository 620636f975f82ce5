"""The degradation verdict: He et al.'s claim in parts, each quoting the sentence it tests.

Every part compares two nets seed by seed: seed s gives both the same training split, data
order and augmentation, so the difference is taken per seed and judged by the 95%
Student's t interval of the mean difference (df = seeds - 1).  An interval clear of zero on
the paper's side: shown; clear of zero on the other side: contradicted; containing zero:
not resolved at this budget (the summary says how many seeds went which way, and the
half-width, which is the smallest mean difference this spread and number of seeds resolve).

The parts, fixed here before any run (lo, hi: the shallowest and deepest depths):

1. plain-hi has higher training error than plain-lo (key);
2. plain-hi has higher test error than plain-lo;
3. the solver does not find the constructed solution: plain-hi trained from scratch has higher
   training error than plain-lo plus identity layers (key; when measured);
4. ResNet-hi has lower training error than ResNet-lo (key);
5. ResNet-hi has lower test error than ResNet-lo.

"Not caused by overfitting" is not a separate part: it is what part 1 shows (the training
error, not only the test error, is higher).
"""

from __future__ import annotations

from typing import Any

from reslab.experiments import stats
from reslab.experiments.sweep import net_name
from reslab.experiments.verdicts import HE2016, cannot_judge, check, finding, interval_status, part, verdict

Q_PLAIN_TRAIN = ("The deep plain nets suffer from increased depth, and exhibit higher training error when going "
                 "deeper.")
Q_PLAIN_TEST = "The deeper network has higher training error, and thus test error."
Q_CONSTRUCTED = ("There exists a solution by construction to the deeper model: the added layers are identity mapping, "
                 "and the other layers are copied from the learned shallower model. [...] But experiments show that "
                 "our current solvers on hand are unable to find solutions that are comparably good or better than "
                 "the constructed solution (or unable to do so in feasible time).")
Q_RESNET_TRAIN = ("Fig. 6 (middle) shows the behaviors of ResNets. Also similar to the ImageNet cases (Fig. 4, right), "
                  "our ResNets manage to overcome the optimization difficulty and demonstrate accuracy gains when the "
                  "depth increases.")
Q_RESNET_TEST = Q_RESNET_TRAIN + " (Table 6: test error 8.75% for ResNet-20, 6.97% for ResNet-56.)"


def errors(nets: dict, kind: str, depth: int, key: str = "final_train_error") -> list[float | None]:
    """Per-seed final errors of one net, in seed order (empty if it was not run)."""
    n = nets.get(net_name(kind, depth))
    return [r.get(key) for r in n["runs"]] if n else []


def higher(cfg, name: str, what: str, worse: list, better: list, *, source: str = "", quote: str = "",
           key: bool = True) -> dict[str, Any]:
    """The part "``worse`` is higher than ``better``", seed by seed: the paired 95% interval
    of ``worse - better`` decides (see the module docstring)."""
    d = stats.paired(worse, better)
    criterion = (f"{what}: the 95% CI of the mean per-seed difference lies above 0 (shown); below 0: "
                 f"contradicted; containing 0 or one seed only: not resolved")
    if d["mean"] is None:
        return part(name, criterion, None, "not run", source=source, quote=quote, key=key)
    observed = (f"{stats.text(stats.summary(worse))} vs {stats.text(stats.summary(better))}; difference "
                f"{stats.paired_text(d)}" + ("" if d["half"] is None else f"; resolvable: |mean| > {d['half']:.3f}"))
    return part(name, criterion, interval_status(d), observed, source=source, quote=quote, key=key)


def _constructed_parts(cfg, data: dict) -> tuple[list, list]:
    c = data.get("constructed")
    if not c:
        return [], []
    rows = c["per_seed"]
    lo, hi = min(cfg.depths), max(cfg.depths)
    p = higher(cfg, f"the solver does not find the constructed solution (plain-{hi} from scratch vs plain-{lo} + "
                    f"{hi - lo} identity layers)",
               f"training error ({c['how']}) of plain-{hi} trained from scratch above the constructed plain-{hi}",
               [r["scratch_train_error"] for r in rows], [r["constructed_train_error"] for r in rows],
               source=HE2016 + ", §1", quote=Q_CONSTRUCTED)
    worst = max(r["max_logit_diff"] / max(r["max_logit"], 1e-12) for r in rows)
    same = max(abs(r["constructed_train_error"] - r["shallow_train_error"]) for r in rows)
    chk = check(f"the constructed plain-{hi} computes plain-{lo}'s function",
                "largest |logit difference| / largest |logit| <= 1e-5 on a batch, and equal training error, every seed",
                worst <= 1e-5 and same == 0, f"{worst:.1e} relative; training errors differ by at most {same:.4f}")
    return [p], [chk]


def _order_findings(cfg, nets: dict) -> list[dict]:
    """With more than two depths: the order over all depths (Table 6), adjacent pairs paired by seed."""
    if len(cfg.depths) < 3:
        return []
    out = []
    for kind, rising in (("plain", True), ("resnet", False)):
        pairs = list(zip(cfg.depths, cfg.depths[1:]))
        # plain: the deeper of each pair has the higher error; resnet: the shallower
        statuses = [interval_status(stats.paired(errors(nets, kind, b), errors(nets, kind, a)) if rising
                                    else stats.paired(errors(nets, kind, a), errors(nets, kind, b)))
                    for a, b in pairs]
        held = False if False in statuses else None if None in statuses else True
        means = [stats.summary(errors(nets, kind, d))["mean"] for d in cfg.depths]
        out.append(finding(f"{kind} nets order by depth ({'deeper is worse' if rising else 'deeper is better'})",
                           "every adjacent pair of depths differs on that side (paired 95% CI)", held,
                           ", ".join(f"{kind}-{d} {m:.3f}" for d, m in zip(cfg.depths, means) if m is not None),
                           prediction="Table 6 / Fig. 6" if kind == "resnet" else "Fig. 6 left", source=HE2016))
    return out


def judge(cfg, data: dict) -> dict[str, Any]:
    """The claim's parts (module docstring), from per-seed final errors only."""
    nets = data["nets"] if "nets" in data else data
    if len(cfg.depths) < 2:
        return cannot_judge(f"the claim compares two depths; got depths={list(cfg.depths)}")
    lo, hi = min(cfg.depths), max(cfg.depths)
    missing = [net_name(k, d) for k in ("plain", "resnet") for d in (lo, hi) if not errors(nets, k, d)]
    if missing:
        return cannot_judge(f"nets {missing} were not run (the claim needs plain and ResNet nets at depths {lo} and {hi})")
    test = "final_test_error"
    constructed, checks = _constructed_parts(cfg, data if "nets" in data else {})
    parts = [
        higher(cfg, f"deeper plain nets have higher training error (plain-{hi} vs plain-{lo})",
               f"final training error of plain-{hi} above plain-{lo}", errors(nets, "plain", hi),
               errors(nets, "plain", lo), source=HE2016 + ", §4.2 (Fig. 6 left)", quote=Q_PLAIN_TRAIN),
        higher(cfg, f"and thus higher test error (plain-{hi} vs plain-{lo})",
               f"final test error of plain-{hi} above plain-{lo}", errors(nets, "plain", hi, test),
               errors(nets, "plain", lo, test), source=HE2016 + ", Fig. 1 caption", quote=Q_PLAIN_TEST, key=False),
        *constructed,
        higher(cfg, f"deeper ResNets have lower training error (ResNet-{hi} vs ResNet-{lo})",
               f"final training error of ResNet-{lo} above ResNet-{hi}", errors(nets, "resnet", lo),
               errors(nets, "resnet", hi), source=HE2016 + ", §4.2 (Fig. 6 middle)", quote=Q_RESNET_TRAIN),
        higher(cfg, f"and lower test error (ResNet-{hi} vs ResNet-{lo})",
               f"final test error of ResNet-{lo} above ResNet-{hi}", errors(nets, "resnet", lo, test),
               errors(nets, "resnet", hi, test), source=HE2016 + ", §4.2 and Table 6", quote=Q_RESNET_TEST,
               key=False),
    ]
    n = min(len(errors(nets, k, d)) for k in ("plain", "resnet") for d in cfg.depths)
    summary = (f"final training error, mean ± 95% CI over {n} seed(s): "
               + "; ".join(f"{k}-{d} {stats.text(stats.summary(errors(nets, k, d)))}"
                           for k in ("plain", "resnet") for d in cfg.depths) + ".")
    numbers = {net_name(k, d): {"train_error": stats.summary(errors(nets, k, d)),
                                "test_error": stats.summary(errors(nets, k, d, test))}
               for k in ("plain", "resnet") for d in cfg.depths}
    return verdict(parts, summary, checks=checks, findings=_order_findings(cfg, nets), **numbers)
