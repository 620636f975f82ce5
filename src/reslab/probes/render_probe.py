"""A probe's results as files: ``results.json``, ``report.md``, ``report.html`` (self-contained,
figure embedded) and ``probe.png``, in the style of reslab's experiment report.

:func:`figure` returns a :class:`matplotlib.figure.Figure` (no backend is selected);
:func:`write` saves everything from the report's dict, so a report can be redrawn from
``results.json`` alone.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.render import CSS, html_table, jsonable, save_figure, subplots
from reslab.training.host import conditions

FIGURE = "probe.png"
# Left in every folder a probe writes: such a folder is a probe's output and may be rewritten.
MARKER = ".reslab-probe"
OUTPUTS = ("results.json", "report.md", "report.html", FIGURE, MARKER)


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def figure(res: dict[str, Any]):
    """Three panels: gradient norms in forward order (log scale), the derivative along the
    path, and its autocorrelation beside white and brown noise's lag-1."""
    import numpy as np

    fig, axes = subplots(1, 3, figsize=(14, 3.8))
    g = res["gradients"]
    for key, label in (("params", "||dL/dθ|| per module"), ("outputs", "||dL/dh|| at module outputs")):
        vals = np.asarray([abs(v) if isinstance(v, (int, float)) else np.nan
                           for v in g[key]["norms"].values()], float)
        vals[vals <= 0] = np.nan
        axes[0].semilogy(np.arange(len(vals)), vals, marker=".", lw=1, label=label)
    axes[0].set_xlabel("module, forward order")
    axes[0].set_title(f"gradient norms: {g['flag']}")
    axes[0].legend(fontsize=8)
    s = res["shattering"]
    d = np.asarray([np.nan if v is None else v for v in s["derivative"]], float)
    axes[1].plot(np.linspace(0, 1, len(d)), d, lw=0.8)
    axes[1].set_xlabel("position along the path, t")
    axes[1].set_title(f"d f(x(t))/dt of {s['of']}"[:60], fontsize=9)
    if s["acf"] is not None:
        axes[2].plot(np.arange(len(s["acf"])), s["acf"], marker=".", lw=1, label="this model")
    for key, color, ls in (("white", "grey", ":"), ("brown", "brown", "--")):
        v = s[f"{key}_noise_lag1"]
        axes[2].axhline(v, color=color, ls=ls, label=f"{key} noise lag-1 ({v:.2f})")
    axes[2].set_xlabel("lag (path steps)")
    axes[2].set_title(f"autocorrelation: {s['flag']}")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _sections(res: dict[str, Any]) -> list[tuple[str, list[str], list[tuple]]]:
    """(title, head, rows) tables shared by the Markdown and HTML renderers."""
    g, s = res["gradients"], res["shattering"]
    th = g["thresholds"]
    out = [("Flags", ["probe", "first/last or lag-1", "criterion (fixed in code)", "flag"], [
        ("parameter-gradient norms",
         f"{_num(g['params']['first_over_last'])} ({g['params']['first']} / {g['params']['last']})",
         f"< {th['vanishing_below']:g}: vanishing; > {th['exploding_above']:g}: exploding", g["params"]["flag"]),
        ("output-gradient norms ||dL/dh||", f"{_num(g['outputs']['first_over_last'])} ({g['outputs']['first']} / "
         f"{g['outputs']['last']})", f"< {th['vanishing_below']:g}: vanishing; > {th['exploding_above']:g}: exploding",
         g["outputs"]["flag"]),
        ("input-gradient along the path", f"{_num(s['lag1'])} (white noise {_num(s['white_noise_lag1'])}, "
         f"brown noise {_num(s['brown_noise_lag1'])})",
         f"lag-1 < {s['threshold']['shattered_below']:.3g} (midway between the noises): shattered",
         s["flag"]),
    ])]
    out.append(("Gradient norms in forward order (" + g["loss"] + ")", ["module", "||dL/dθ||", "||dL/dh||"],
                [(k, _num(v), _num(g["outputs"]["norms"].get(k))) for k, v in g["params"]["norms"].items()]))
    a = res.get("activity")
    if a:
        out.append(("Activation activity over the path (active: pre-activation > 0)",
                    ["module", "type", "active", "co-active"],
                    [(n, t, _num(x), _num(c))
                     for n, t, x, c in zip(a["names"], a["types"], a["active"], a["coactive"])]))
    if res.get("batchnorm"):
        out.append(("BatchNorm inputs over the batch", ["layer", "type", "mean |mean|", "mean var", "min var",
                                                        "dead channels", "running stats at init"],
                    [(b["name"], b["type"], _num(b["mean_abs_mean"]), _num(b["mean_var"]), _num(b["min_var"]),
                      _num(b["dead_share"]), b["running_stats_at_init"]) for b in res["batchnorm"]]))
    return out


def _headline(res: dict[str, Any]) -> str:
    if not res["findings"]:
        return "No problem flagged: gradients level, input-gradient not shattered."
    return "Flagged: " + "; ".join(res["findings"])


def render_markdown(res: dict[str, Any]) -> str:
    lines = [f"# reslab probe: {res['model']}", "", f"**{_headline(res)}**", "",
             f"Input {tuple(res['input_shape'])}, output {tuple(res['output_shape'])}. "
             f"Path: {res['shattering']['path']}, {res['shattering']['points']} points; "
             f"input-gradient of {res['shattering']['of']}.", ""]
    for title, head, rows in _sections(res):
        lines += [f"## {title}", "", "| " + " | ".join(h.replace("|", "\\|") for h in head) + " |",
                  "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
        lines.append("")
    if (res.get("_dir_has_figure")):
        lines += [f"![probe]({FIGURE})", ""]
    c = res.get("conditions", {})
    if c:
        lines.append(f"Conditions: {c.get('cpu')}, torch {c.get('torch')}, reslab {c.get('reslab')}; "
                     f"`{c.get('command')}`; {c.get('date')}.")
    return "\n".join(lines) + "\n"


def render_html(res: dict[str, Any], png: bytes | None = None) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>reslab probe: {e(res['model'])}</title>"
             f"<style>{CSS}</style></head><body><h1>reslab probe: {e(res['model'])}</h1>",
             f"<p><strong class='{'ok' if not res['findings'] else 'no'}'>{e(_headline(res))}</strong></p>",
             f"<p class='scope'>input {e(str(tuple(res['input_shape'])))}, "
             f"output {e(str(tuple(res['output_shape'])))}; "
             f"path: {e(res['shattering']['path'])}, {res['shattering']['points']} points; input-gradient of "
             f"{e(res['shattering']['of'])}</p>"]
    for i, (title, head, rows) in enumerate(_sections(res)):
        table = f"<h2>{e(title)}</h2>" + html_table(head, rows)
        parts.append(table if i == 0 else f"<details open><summary>{e(title)}</summary>{html_table(head, rows)}</details>")
        if i == 0 and png:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='probe figure' src='data:image/png;base64,{data}'>")
    c = res.get("conditions", {})
    if c:
        parts.append(f"<p class='scope'>{e(str(c.get('cpu')))}, torch {e(str(c.get('torch')))}, reslab "
                     f"{e(str(c.get('reslab')))}; <code>{e(str(c.get('command')))}</code>; {e(str(c.get('date')))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _atomic(path: Path, data: str | bytes) -> None:
    atomic_write(path, data)


def check_out(out_dir: str | Path, *, overwrite: bool = False) -> None:
    """``out_dir`` may receive a probe's files: missing, empty, an earlier probe's output (it holds
    :data:`MARKER`), or anything with ``overwrite``.  Never replace files a probe did not write
    without being asked."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReslabError(f"--out {out}: is a file, not a directory")
    if overwrite or not out.is_dir() or (out / MARKER).is_file():
        return
    entries = sorted(p.name for p in out.iterdir())
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ReslabError(f"--out {out}: not empty ({shown}) and not written by `reslab probe`; choose an empty or "
                          "new directory, or pass --overwrite to replace results.json and report.* there")


def write(report, out_dir: str | Path, *, figures: bool = True, overwrite: bool = False) -> dict[str, Path]:
    """Write ``results.json``, ``report.md``, ``report.html`` (and ``probe.png``) into ``out_dir``;
    refused (:func:`check_out`) for a non-empty folder that is not a probe's output, unless ``overwrite``."""
    check_out(out_dir, overwrite=overwrite)
    res = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    res.setdefault("conditions", conditions())
    res = jsonable(res)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `reslab probe`; the folder may be rewritten by the next probe\n")
    paths = {"results": out / "results.json", "markdown": out / "report.md", "html": out / "report.html"}
    _atomic(paths["results"], json.dumps(res, indent=1))
    png = None
    if figures:
        paths["figure"] = save_figure(figure(_restore(res)), out / FIGURE)
        png = paths["figure"].read_bytes()
    _atomic(paths["markdown"], render_markdown({**res, "_dir_has_figure": figures}))
    _atomic(paths["html"], render_html(res, png))
    return paths


def _restore(res: dict[str, Any]) -> dict[str, Any]:
    """JSON's "inf" strings back to floats, for plotting."""
    def fix(v):
        if v == "inf":
            return math.inf
        if v == "-inf":
            return -math.inf
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return fix(res)
