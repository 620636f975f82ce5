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
from reslab.experiments import EXPERIMENTS as TITLES
from reslab.experiments.base import NOT_REPRODUCED, OUTCOMES, PARTLY, REPRODUCED, RESULTS_FILE, load_results

EXPERIMENTS = list(TITLES)


def collect(out_dir: Path) -> dict[str, dict[str, Any] | None]:
    """Each registered experiment's saved results (None where it was not run)."""
    found = {name: load_results(out_dir / name) if (out_dir / name / RESULTS_FILE).is_file() else None
             for name in EXPERIMENTS}
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
    """A result's outcome; results written before verdicts had parts carry only a flag."""
    v = res["verdict"]
    return v.get("outcome") or (REPRODUCED if v.get("reproduced") else NOT_REPRODUCED)


def _scope(res: dict) -> str:
    """Scale, data, budget, seeds and interval: printed beside each verdict."""
    s = {"scale": res["config"].get("scale"), "seeds": res["config"].get("seeds"), **res.get("scope", {})}
    c = res["conditions"]
    return ("; ".join(f"{k}: {v}" for k, v in s.items() if v is not None)
            + f". Ran {res.get('seconds', 0):.0f} s with {c['torch_threads']} torch thread(s) at {c['date']}.")


def headline(results: dict[str, dict | None]) -> str:
    """"2 of 4 claims reproduced, 1 partly, 1 not": partial results count as partial."""
    ran = [outcome_of(r) for r in results.values() if r]
    counts = {o: ran.count(o) for o in OUTCOMES}
    return (f"{counts[REPRODUCED]} of {len(ran)} claims reproduced, {counts[PARTLY]} partly, "
            f"{counts[NOT_REPRODUCED]} not reproduced.")


def _parts(res: dict) -> list[tuple[str, str, str, str]]:
    return [(p["name"], p["criterion"], p["observed"], "yes" if p["passed"] else "NO")
            for p in res["verdict"].get("parts", [])]


def _conditions_line(results: dict[str, dict | None]) -> str:
    ran = [r for r in results.values() if r]
    c = ran[0]["conditions"]
    seeds = {r["experiment"]: r["config"].get("seeds") for r in ran}
    return (f"Conditions: {c['cpu']} ({c['cores']} cores{', ' + ' '.join(c.get('cpu_flags', [])) if c.get('cpu_flags') else ''}), "
            f"torch {c['torch']}, reslab {c.get('reslab', '?')}, Python {c['python']}, GPU: {c['cuda'] or 'none'}; "
            f"run at {c['date']}" + (f" by `{c['command']}`" if c.get("command") else "")
            + f". Seeds per experiment: {_fmt(seeds)}. "
            f"Total experiment time {sum(r.get('seconds', 0) for r in ran):.0f} s.")


PART_HEAD = ["part of the claim", "criterion (fixed before the run)", "measured", "met"]


def render_markdown(out_dir: Path, results: dict[str, dict | None]) -> str:
    lines = ["# reslab: the depth problems of neural nets, reproduced", "", headline(results), "",
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
        lines += ["", f"<a id=\"{name}\"></a>", f"## {TITLES[name]}", "", f"> {res['claim']}", "",
                  f"**Verdict: {outcome_of(res)}.** {v['summary']}", "", f"_{_scope(res)}_", ""]
        if _parts(res):
            lines += ["| " + " | ".join(PART_HEAD) + " |", "|---|---|---|---|"]
            lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in _parts(res)]
            lines.append("")
        for fig in figures(out_dir, name):
            lines.append(f"![{name}: {fig.stem}]({os.path.relpath(fig, out_dir)})")
        for t in res["data"].get("tables", []):
            lines += ["", f"**{t['title']}**", "", "| " + " | ".join(t["head"]) + " |",
                      "|" + "---|" * len(t["head"])]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in t["rows"]]
        lines += ["", "<details><summary>numbers</summary>", "", "| number | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(val)} |" for k, val in _flatten(v["numbers"])]
        lines += ["", "</details>", "", "<details><summary>settings</summary>", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(val)} |" for k, val in res["config"].items()]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.7em}h2{border-top:1px solid #ddd;padding-top:1em;margin-top:2em}
blockquote{margin:0;padding:.5em 1em;border-left:4px solid #8ab;background:#f5f8fa}
.ok{color:#176b2c;font-weight:600}.partly{color:#9a5b00;font-weight:600}.no{color:#a3171b;font-weight:600}
.scope{color:#444;font-size:.92em;background:#f7f7f2;padding:.3em .6em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:.9em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}details{margin:.5em 0}code{background:#f3f3f3}"""

_CLASS = {REPRODUCED: "ok", PARTLY: "partly", NOT_REPRODUCED: "no"}


def _table(head: list[str], rows: list) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(out_dir: Path, results: dict[str, dict | None]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>reslab report</title><style>{_CSS}</style>"
             "</head><body><h1>reslab: the depth problems of neural nets, reproduced</h1>",
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
        if _parts(res):
            parts.append(_table(PART_HEAD, _parts(res)))
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
