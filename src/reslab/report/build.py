"""The report: one section per seed claim, from saved results only (never trains).

``build(out_dir)`` reads ``OUT/NAME/results.json`` and the PNGs beside it for each
experiment and writes ``OUT/report.html`` (self-contained: figures embedded as base64)
and ``OUT/report.md`` (figures linked by relative path).
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.render import CSS as _CSS, html_table as _table
from reslab.experiments import EXPERIMENTS as TITLES
from reslab.experiments.base import RESULTS_FILE, load_results
from reslab.experiments.verdicts import (CONTRADICTED, NOT_JUDGED, NOT_RESOLVED, OUTCOMES, PARTLY, REPRODUCED,
                                         STATUSES)

TITLE = "reslab: the depth problems of neural nets, measured against their sources"
# Results files written before verdicts had five outcomes said "not reproduced" where a criterion failed.
_LEGACY = {"not reproduced": CONTRADICTED}

EXPERIMENTS = list(TITLES)


def collect(out_dir: Path) -> dict[str, dict[str, Any] | None]:
    """Each experiment's saved results (None where one that `reproduce` runs was not run; one
    that it does not run appears only where it has results)."""
    from reslab.experiments import REPRODUCE

    found = {name: load_results(out_dir / name) if (out_dir / name / RESULTS_FILE).is_file() else None
             for name in EXPERIMENTS}
    found = {name: res for name, res in found.items() if res or name in REPRODUCE}
    if not any(found.values()):
        raise ReslabError(f"{out_dir}: no experiment results found (expected {', '.join(f'{n}/{RESULTS_FILE}' for n in EXPERIMENTS)}); "
                          f"run `reslab reproduce --out {out_dir}` first")
    return found


def figures(out_dir: Path, name: str) -> list[Path]:
    return sorted((out_dir / name).glob("*.png"))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict) and v and all(not isinstance(x, (dict, list)) for x in v.values()) and len(v) > 6:
            rows.append((prefix + k, v))
        elif isinstance(v, dict):
            rows.extend(_flatten(v, f"{prefix}{k}."))
        else:
            rows.append((prefix + k, v))
    return rows


def outcome_of(res: dict) -> str:
    """A result's outcome, one of OUTCOMES; a results file with an unknown one is refused in one line."""
    v = res.get("verdict")
    if not isinstance(v, dict):
        raise ReslabError(f"{res.get('experiment', '?')}/{RESULTS_FILE}: no verdict object")
    o = v.get("outcome") or (REPRODUCED if v.get("reproduced") else CONTRADICTED)
    o = _LEGACY.get(o, o)
    if o not in OUTCOMES:
        raise ReslabError(f"{res.get('experiment', '?')}/{RESULTS_FILE}: unknown outcome {str(o)[:40]!r}; "
                          f"valid: {', '.join(OUTCOMES)}")
    return o


def _scope(res: dict) -> str:
    """Scale, data, budget, seeds and interval: printed beside each verdict."""
    s = {"scale": res["config"].get("scale"), "seeds": res["config"].get("seeds"), **res.get("scope", {})}
    c = res["conditions"]
    compute = s.pop("compute", None) or f"1 process x {res['config'].get('threads') or c['torch_threads']} torch thread(s)"
    return ("; ".join(f"{k}: {v}" for k, v in s.items() if v is not None)
            + f". Ran {res.get('seconds', 0):.0f} s, {compute}, at {c['date']}.")


def headline(results: dict[str, dict | None]) -> str:
    """"2 of 4 claims reproduced, 1 partly, 1 not resolved at this budget": every outcome
    counted as what it is."""
    ran = [outcome_of(r) for r in results.values() if r]
    counts = {o: ran.count(o) for o in OUTCOMES}
    rest = [f"{counts[o]} {'partly' if o == PARTLY else o}" for o in (PARTLY, NOT_RESOLVED, CONTRADICTED, NOT_JUDGED)
            if counts[o]]
    return f"{counts[REPRODUCED]} of {len(ran)} claims reproduced" + "".join(f", {r}" for r in rest) + "."


def _status(p: dict) -> str:
    s = p.get("status") or ("shown" if p.get("passed") else "contradicted")
    return s if s in STATUSES else "?"


def _parts(res: dict) -> list[tuple[str, ...]]:
    return [(p["name"] + ("" if p.get("key", True) else " (supporting)"),
             (p.get("quote") or "") + (f" ({p['source']})" if p.get("source") else ""),
             p["criterion"], p["observed"], _status(p).upper() if _status(p) != "shown" else "shown")
            for p in res["verdict"].get("parts", [])]


def _checks(res: dict) -> list[tuple[str, ...]]:
    return [(c["name"], c["statement"], c["observed"], "ok" if c["passed"] else "FAILED")
            for c in res["verdict"].get("checks", [])]


def _findings(res: dict) -> list[tuple[str, ...]]:
    return [(f["name"], f["criterion"], f["observed"],
             (f.get("prediction") or "") + (f" ({f['source']})" if f.get("source") else ""),
             {"shown": "held", "not resolved": "not resolved", "contradicted": "did not hold"}.get(f.get("status"), "?"))
            for f in res["verdict"].get("findings", [])]


def _unread(res: dict) -> str:
    unread = res["verdict"].get("unread") or []
    return ("Sources that could not be read here (their quotes come from secondary copies or are paraphrased): "
            + "; ".join(unread) + ".") if unread else ""


def _conditions_line(results: dict[str, dict | None]) -> str:
    ran = [r for r in results.values() if r]
    c = ran[0]["conditions"]
    seeds = {r["experiment"]: r["config"].get("seeds") for r in ran}
    return (f"Conditions: {c['cpu']} ({c['cores']} cores{', ' + ' '.join(c.get('cpu_flags', [])) if c.get('cpu_flags') else ''}), "
            f"torch {c['torch']}, reslab {c.get('reslab', '?')}, Python {c['python']}, GPU: {c['cuda'] or 'none'}; "
            f"run at {c['date']}" + (f" by `{c['command']}`" if c.get("command") else "")
            + f". Seeds per experiment: {_fmt(seeds)}. "
            f"Total experiment time {sum(r.get('seconds', 0) for r in ran):.0f} s.")


PART_HEAD = ["part of the claim", "the sentence it tests (source)", "criterion (fixed before the run)", "measured",
             "status"]
CHECK_HEAD = ["check (an identity the measurement must satisfy)", "statement", "measured", "result"]
FINDING_HEAD = ["finding (beyond the claim)", "criterion (fixed before the run)", "measured",
                "prediction (source)", "result"]


def _md_table(head: list[str], rows: list) -> list[str]:
    cell = lambda c: html.escape(str(c)).replace("|", "/").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
        ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def render_markdown(out_dir: Path, results: dict[str, dict | None]) -> str:
    lines = [f"# {TITLE}", "", headline(results), "",
             _conditions_line(results), "", "| claim | verdict | time |", "|---|---|---|"]
    for name, res in results.items():
        if res:
            o = outcome_of(res)
            lines.append(f"| [{TITLES[name]}](#{name}) | {o if o == REPRODUCED else f'**{o}**'} | "
                         f"{res.get('seconds', 0):.0f} s |")
        else:
            lines.append(f"| {TITLES[name]} | not run | |")
    for name, res in results.items():
        if not res:
            continue
        v = res["verdict"]
        esc = html.escape
        lines += ["", f"<a id=\"{name}\"></a>", f"## {TITLES[name]}", "", f"> {esc(res['claim'])}", "",
                  f"**Verdict: {outcome_of(res)}.** {esc(v['summary'])}", "", f"_{esc(_scope(res))}_", ""]
        for head, rows in ((PART_HEAD, _parts(res)), (CHECK_HEAD, _checks(res)), (FINDING_HEAD, _findings(res))):
            if rows:
                lines += _md_table(head, rows) + [""]
        if _unread(res):
            lines += [esc(_unread(res)), ""]
        for fig in figures(out_dir, name):
            lines.append(f"![{name}: {fig.stem}]({os.path.relpath(fig, out_dir)})")
        for t in res["data"].get("tables", []):
            lines += ["", f"**{esc(t['title'])}**", ""] + _md_table(t["head"], t["rows"])
        lines += ["", "<details><summary>numbers</summary>", ""]
        lines += _md_table(["number", "value"], [(k, _fmt(val)) for k, val in _flatten(v["numbers"])])
        lines += ["", "</details>", "", "<details><summary>settings</summary>", ""]
        lines += _md_table(["setting", "value"], [(k, _fmt(val)) for k, val in res["config"].items()])
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


_CLASS = {REPRODUCED: "ok", PARTLY: "partly", NOT_RESOLVED: "unresolved", CONTRADICTED: "no", NOT_JUDGED: "unresolved"}


def render_html(out_dir: Path, results: dict[str, dict | None]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>reslab report</title><style>{_CSS}</style>"
             f"</head><body><h1>{e(TITLE)}</h1>",
             f"<p><strong>{e(headline(results))}</strong></p><p>{e(_conditions_line(results))}</p>"]
    rows = [(TITLES[name], outcome_of(res) if res else "not run", f"{res.get('seconds', 0):.0f} s" if res else "")
            for name, res in results.items()]
    parts.append(_table(["claim", "verdict", "time"], rows))
    for name, res in results.items():
        if not res:
            continue
        v = res["verdict"]
        o = outcome_of(res)
        parts.append(f"<h2 id='{name}'>{e(TITLES[name])}</h2><blockquote>{e(res['claim'])}</blockquote>"
                     f"<p><span class='{_CLASS[o]}'>{e(o.capitalize())}.</span> {e(v['summary'])}</p>"
                     f"<p class='scope'>{e(_scope(res))}</p>")
        for head, rows in ((PART_HEAD, _parts(res)), (CHECK_HEAD, _checks(res)), (FINDING_HEAD, _findings(res))):
            if rows:
                parts.append(_table(head, rows))
        if _unread(res):
            parts.append(f"<p class='scope'>{e(_unread(res))}</p>")
        for fig in figures(out_dir, name):
            data = base64.b64encode(fig.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{e(name)}: {e(fig.stem)}' src='data:image/png;base64,{data}'>")
        for t in res["data"].get("tables", []):
            parts.append(f"<p><strong>{e(t['title'])}</strong></p>" + _table(t["head"], t["rows"]))
        parts.append("<details><summary>numbers</summary>"
                     + _table(["number", "value"], [(k, _fmt(val)) for k, val in _flatten(v["numbers"])]) + "</details>")
        parts.append("<details><summary>settings</summary>" +
                     _table(["setting", "value"], [(k, _fmt(val)) for k, val in res["config"].items()]) + "</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` in ``out_dir`` from its saved results."""
    out = Path(out_dir)
    if not out.is_dir():
        raise ReslabError(f"{out}: no such results directory; run `reslab reproduce --out {out}` first")
    results = collect(out)
    written = []
    for fname, text in (("report.html", render_html(out, results)), ("report.md", render_markdown(out, results))):
        path = out / fname
        atomic_write(path, text)
        written.append(path)
    return written[0], written[1]
