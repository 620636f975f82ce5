"""Summary statistics over seeds: mean, spread and a 95% confidence interval.

The interval is Student's t: ``mean ± t(0.975, n-1) · std / sqrt(n)``.  With one seed there
is no interval (``half`` is None), and a criterion that needs one must say so.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

# t(0.975, df) for df = 1..30; beyond 30 the normal value 1.96 is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


def summary(values: Sequence[float]) -> dict[str, Any]:
    """``{mean, std, n, half, lo, hi}``: ``std`` with ddof 1; ``half`` the 95% half-width."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    n = len(v)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "half": None, "lo": None, "hi": None}
    mean = sum(v) / n
    if n == 1:
        return {"mean": mean, "std": None, "n": 1, "half": None, "lo": None, "hi": None}
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "half": half, "lo": mean - half, "hi": mean + half}


def difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean of ``a`` minus mean of ``b`` with a 95% interval (Welch's standard error,
    conservative degrees of freedom ``min(n_a, n_b) - 1``).  Samples need not be paired."""
    sa, sb = summary(a), summary(b)
    if sa["n"] == 0 or sb["n"] == 0:
        return {"mean": None, "half": None, "lo": None, "hi": None, "n": (sa["n"], sb["n"])}
    diff = sa["mean"] - sb["mean"]
    if sa["n"] < 2 or sb["n"] < 2:
        return {"mean": diff, "half": None, "lo": None, "hi": None, "n": (sa["n"], sb["n"])}
    se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
    half = t975(min(sa["n"], sb["n"]) - 1) * se
    return {"mean": diff, "half": half, "lo": diff - half, "hi": diff + half, "n": (sa["n"], sb["n"])}


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean of the per-seed differences ``a[i] - b[i]`` with a 95% interval (Student's t,
    ``n - 1`` degrees of freedom), for designs that pair seeds (the same seed gives both nets
    the same data order).  Also how many seeds went each way."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b)
             if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
    d = [x - y for x, y in pairs]
    s = summary(d)
    return {**s, "method": "paired", "df": s["n"] - 1 if s["n"] > 1 else None, "diffs": d,
            "positive": sum(x > 0 for x in d), "negative": sum(x < 0 for x in d)}


def paired_text(d: dict[str, Any], fmt: str = "+.3f") -> str:
    """``+0.021 ± 0.017 (paired 95% CI, n=5, df=4; 5 of 5 seeds positive)``."""
    if d.get("mean") is None:
        return "n/a"
    way = f"{d['positive']} of {d['n']} seeds positive"
    if d.get("half") is None:
        return f"{d['mean']:{fmt}} (n={d['n']}, no interval; {way})"
    return f"{d['mean']:{fmt}} ± {d['half']:{fmt.lstrip('+')}} (paired 95% CI, n={d['n']}, df={d['df']}; {way})"


def text(s: dict[str, Any], fmt: str = ".3f") -> str:
    """``0.123 ± 0.010 (95% CI, n=3)``, or ``0.123 (n=1, no interval)``."""
    if s.get("mean") is None:
        return "n/a"
    n = s["n"] if isinstance(s["n"], int) else min(s["n"])
    if s.get("half") is None:
        return f"{s['mean']:{fmt}} (n={n}, no interval)"
    return f"{s['mean']:{fmt}} ± {s['half']:{fmt.lstrip('+')}} (95% CI, n={n})"
