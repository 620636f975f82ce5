"""The report: one section per seed claim, from saved results only (never trains).

``build(out_dir)`` reads ``OUT/NAME/results.json`` and the PNGs beside it for each
experiment and writes ``OUT/report.html`` (self-contained: figures embedded as base64)
and ``OUT/report.md`` (figures linked by relative path).
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from reslab.errors import ReslabError
from reslab.experiments import EXPERIMENTS
from reslab.experiments.base import RESULTS_FILE

TITLES = {
    "vanishing": "Vanishing gradients",
    "exploding": "Exploding gradients",
    "shattered": "Shattered gradients (Balduzzi et al. 2017)",
    "degradation": "The degradation problem (He et al. 2016)",
}


def collect(out_dir: Path) -> dict[str, dict[str, Any] | None]:
    found = {}
    for name in EXPERIMENTS:
        path = out_dir / name / RESULTS_FILE
        if not path.is_file():
            found[name] = None
            continue
        try:
            found[name] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReslabError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
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


def _section_conditions(res: dict) -> str:
    c = res["conditions"]
    return (f"Ran {res.get('seconds', 0):.0f} s with {c['torch_threads']} torch thread(s), "
            f"{res['config'].get('seeds')} seed(s), at {c['date']}.")


def _overall(results: dict[str, dict | None]) -> dict[str, Any]:
    ran = [r for r in results.values() if r]
    cond = ran[0]["conditions"]
    seeds = {r["experiment"]: r["config"].get("seeds") for r in ran}
    return {"conditions": cond, "seeds": seeds, "seconds": sum(r.get("seconds", 0) for r in ran),
            "reproduced": sum(1 for r in ran if r["verdict"]["reproduced"]), "ran": len(ran)}


def _degradation_table(res: dict) -> list[tuple[str, str, str]]:
    from reslab.experiments.degradation import paper_table

    on_cifar = res["config"].get("dataset") == "cifar10" and res["config"].get("recipe") == "he2016"
    rows = []
    for name, measured, paper in paper_table(res):
        rows.append((name, "n/a" if measured is None else f"{measured:.2f}",
                     (f"{paper:.2f}" if paper is not None else "curve only (Fig. 6)") if on_cifar else
                     "(CIFAR-10 he2016 only)"))
    return rows


def render_markdown(out_dir: Path, results: dict[str, dict | None]) -> str:
    o = _overall(results)
    c = o["conditions"]
    lines = ["# reslab: the depth problems of neural nets, reproduced", "",
             f"{o['reproduced']} of {o['ran']} claims reproduced. Total experiment time {o['seconds']:.0f} s.", "",
             f"Conditions: {c['cpu']} ({c['cores']} cores), torch {c['torch']}, "
             f"Python {c['python']}, GPU: {c['cuda'] or 'none'}; run at {c['date']}. "
             f"Seeds per experiment: {_fmt(o['seeds'])}.", "",
             "| claim | verdict | time |", "|---|---|---|"]
    for name, res in results.items():
        if res:
            mark = "reproduced" if res["verdict"]["reproduced"] else "**not reproduced**"
            lines.append(f"| [{TITLES[name]}](#{name}) | {mark} | {res.get('seconds', 0):.0f} s |")
        else:
            lines.append(f"| {TITLES[name]} | not run | |")
    for name, res in results.items():
        if not res:
            continue
        v = res["verdict"]
        lines += ["", f"<a id=\"{name}\"></a>", f"## {TITLES[name]}", "", f"> {res['claim']}", "",
                  f"**Verdict: {'reproduced' if v['reproduced'] else 'NOT reproduced'}.** {v['summary']}", "",
                  f"_{_section_conditions(res)}_", ""]
        for fig in figures(out_dir, name):
            lines.append(f"![{name}: {fig.stem}]({os.path.relpath(fig, out_dir)})")
        if name == "degradation":
            lines += ["", "| net | measured test error % | paper (Table 6, CIFAR-10) % |", "|---|---|---|"]
            lines += [f"| {a} | {b} | {p} |" for a, b, p in _degradation_table(res)]
        lines += ["", "| number | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(val)} |" for k, val in _flatten(v["numbers"])]
        lines += ["", "<details><summary>settings</summary>", "", "| setting | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(val)} |" for k, val in res["config"].items()]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.7em}h2{border-top:1px solid #ddd;padding-top:1em;margin-top:2em}
blockquote{margin:0;padding:.5em 1em;border-left:4px solid #8ab;background:#f5f8fa}
.ok{color:#176b2c;font-weight:600}.no{color:#a3171b;font-weight:600}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:.9em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}details{margin:.5em 0}code{background:#f3f3f3}"""


def _table(head: list[str], rows: list[tuple]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(out_dir: Path, results: dict[str, dict | None]) -> str:
    o = _overall(results)
    c = o["conditions"]
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>reslab report</title><style>{_CSS}</style>"
             "</head><body><h1>reslab: the depth problems of neural nets, reproduced</h1>",
             f"<p>{o['reproduced']} of {o['ran']} claims reproduced. Total experiment time {o['seconds']:.0f} s.</p>",
             f"<p>Conditions: {e(str(c['cpu']))} ({c['cores']} cores), "
             f"torch {e(c['torch'])}, Python {e(c['python'])}, GPU: {e(str(c['cuda'] or 'none'))}; run at {e(c['date'])}. "
             f"Seeds per experiment: {e(_fmt(o['seeds']))}.</p>"]
    rows = []
    for name, res in results.items():
        verdict = ("reproduced" if res["verdict"]["reproduced"] else "NOT reproduced") if res else "not run"
        rows.append((TITLES[name], verdict, f"{res.get('seconds', 0):.0f} s" if res else ""))
    parts.append(_table(["claim", "verdict", "time"], rows))
    for name, res in results.items():
        if not res:
            continue
        v = res["verdict"]
        cls, word = ("ok", "Reproduced") if v["reproduced"] else ("no", "Not reproduced")
        parts.append(f"<h2 id='{name}'>{e(TITLES[name])}</h2><blockquote>{e(res['claim'])}</blockquote>"
                     f"<p><span class='{cls}'>{word}.</span> {e(v['summary'])}</p>"
                     f"<p><em>{e(_section_conditions(res))}</em></p>")
        for fig in figures(out_dir, name):
            data = base64.b64encode(fig.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{e(name)}: {e(fig.stem)}' src='data:image/png;base64,{data}'>")
        if name == "degradation":
            parts.append(_table(["net", "measured test error %", "paper (Table 6, CIFAR-10) %"], _degradation_table(res)))
        parts.append(_table(["number", "value"], [(k, _fmt(val)) for k, val in _flatten(v["numbers"])]))
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
        tmp = path.with_name(f".{fname}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        written.append(path)
    return written[0], written[1]
