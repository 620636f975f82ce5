"""Verdicts: a claim split into parts, each testing one sentence of its source.

A **part** tests one sentence, figure or table of a source, quoted with its citation.  Its
criterion is fixed in code before the run and is no stricter and no looser than the
sentence.  A part has one of three statuses:

* ``shown``: the numbers meet the criterion;
* ``not resolved``: the numbers cannot decide it at this budget (an interval over seeds that
  contains zero, one seed and no interval);
* ``contradicted``: the numbers are on the wrong side (an interval clear of zero on the
  wrong side; a deterministic measurement that misses the criterion).

``passed`` in :func:`part` is ``True`` (shown), ``None`` (not resolved) or ``False``
(contradicted).

Beside the parts, a verdict carries

* **checks**: identities that cannot fail unless the instrument is broken (σ′ ≤ 1/4, a
  product bound).  They confirm the measurement; they are not parts of the claim;
* **findings**: measured facts the claim does not make, each with its own fixed criterion
  and, where the literature predicts it, the prediction beside the measurement.  A finding
  never changes the outcome.

The outcome of a verdict, from its parts:

* **reproduced**: every part shown;
* **partly reproduced**: some part not resolved, none contradicted, and a key part shown;
* **not resolved at this budget**: none contradicted, no key part shown;
* **contradicted**: some part contradicted;
* **not judged**: the run lacks what the criteria need (a net was not run).
"""

from __future__ import annotations

from typing import Any, Iterable

SHOWN = "shown"
UNRESOLVED = "not resolved"
CONTRADICTED_PART = "contradicted"
STATUSES = (SHOWN, UNRESOLVED, CONTRADICTED_PART)

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_RESOLVED = "not resolved at this budget"
CONTRADICTED = "contradicted"
NOT_JUDGED = "not judged"
OUTCOMES = (REPRODUCED, PARTLY, NOT_RESOLVED, CONTRADICTED, NOT_JUDGED)
# Earlier results files used "not reproduced" where a criterion failed; the report reads them as contradicted.
NOT_REPRODUCED = CONTRADICTED

# The sources the claims come from, as the report cites them.
SEED_ARTICLE = "the seed article (a tutorial on ResNets and the depth problems)"
HE2016 = "He et al. 2016, Deep Residual Learning for Image Recognition (arXiv 1512.03385)"
BALDUZZI2017 = "Balduzzi et al. 2017, The Shattered Gradients Problem (arXiv 1702.08591, ICML 2017 version)"
IOFFE2015 = "Ioffe & Szegedy 2015, Batch Normalization (arXiv 1502.03167)"
PASCANU2013 = "Pascanu et al. 2013, On the difficulty of training recurrent neural networks (arXiv 1211.5063)"
YANG2019 = "Yang et al. 2019, A Mean Field Theory of Batch Normalization (arXiv 1902.08129)"


def status_of(passed: bool | None) -> str:
    return SHOWN if passed is True else UNRESOLVED if passed is None else CONTRADICTED_PART


def part(name: str, criterion: str, passed: bool | None, observed: str, *, source: str = "",
         quote: str = "", key: bool = True) -> dict[str, Any]:
    """One part of a claim.  ``quote`` is the sentence it tests, ``source`` where it stands
    (e.g. ``HE2016 + ", §1"``); ``key`` parts are the ones the claim rests on."""
    status = status_of(passed)
    return {"name": name, "source": source, "quote": quote, "criterion": criterion, "status": status,
            "passed": status == SHOWN, "observed": observed, "key": bool(key)}


def check(name: str, statement: str, passed: bool, observed: str) -> dict[str, Any]:
    """An identity the measurement must satisfy (it cannot fail unless the instrument is broken)."""
    return {"name": name, "statement": statement, "passed": bool(passed), "observed": observed}


def finding(name: str, criterion: str, held: bool | None, observed: str, *, prediction: str = "",
            source: str = "") -> dict[str, Any]:
    """A measured fact beyond the claim, with its own fixed criterion and, where the
    literature predicts it, the prediction (``prediction``, from ``source``)."""
    return {"name": name, "criterion": criterion, "status": status_of(held), "held": held is True,
            "observed": observed, "prediction": prediction, "source": source}


def outcome(parts: list[dict[str, Any]]) -> str:
    """The outcome from the parts' statuses (module docstring)."""
    if not parts:
        return NOT_JUDGED
    statuses = [p.get("status", status_of(p.get("passed"))) for p in parts]
    if CONTRADICTED_PART in statuses:
        return CONTRADICTED
    if all(s == SHOWN for s in statuses):
        return REPRODUCED
    key_shown = any(s == SHOWN and p.get("key", True) for s, p in zip(statuses, parts))
    return PARTLY if key_shown else NOT_RESOLVED


def verdict(parts: list[dict[str, Any]], summary: str = "", *, checks: Iterable[dict] = (),
            findings: Iterable[dict] = (), unread: Iterable[str] = (), **numbers: Any) -> dict[str, Any]:
    """A verdict from the claim's parts.  The summary starts by naming the parts that were
    contradicted or not resolved; ``unread`` lists sources that could not be read."""
    result = outcome(parts)
    checks, findings = list(checks), list(findings)
    lead = []
    for status, word in ((CONTRADICTED_PART, "Contradicted"), (UNRESOLVED, "Not resolved at this budget")):
        names = [p["name"] for p in parts if p["status"] == status]
        if names:
            lead.append(f"{word}: " + "; ".join(names) + ".")
    broken = [c["name"] for c in checks if not c["passed"]]
    if broken:
        lead.append("Check failed (the measurement itself is suspect): " + "; ".join(broken) + ".")
    return {"outcome": result, "reproduced": result == REPRODUCED, "parts": parts, "checks": checks,
            "findings": findings, "unread": list(unread), "summary": " ".join(lead + [summary]).strip(),
            "numbers": numbers}


def cannot_judge(reason: str, **numbers: Any) -> dict[str, Any]:
    """The verdict when the run lacks what a criterion needs: not judged, saying why."""
    v = verdict([], reason, **numbers)
    return {**v, "summary": f"Not judged: {reason}"}


def interval_status(d: dict[str, Any], side: float = 1.0) -> bool | None:
    """A difference with a 95% interval, read on the paper's ``side`` (+1: the paper says it
    is positive): True if the interval is clear of zero on that side, False if clear of zero
    on the other, None (not resolved) if it contains zero or there is no interval."""
    if d.get("lo") is None or d.get("hi") is None:
        return None
    lo, hi = (d["lo"], d["hi"]) if side > 0 else (-d["hi"], -d["lo"])
    return True if lo > 0 else False if hi < 0 else None


def verdict_line(results: dict[str, Any]) -> str:
    v = results["verdict"]
    return f"[{results['experiment']}] {v['outcome'].upper()}: {v['summary']}"
