"""Training curves in the style of He et al. 2016, Figs. 1 and 6: error (%) against
iterations, training error dashed, validation error solid (and test error, dash-dotted and
labelled "test", only where a run logged it with ``eval_test=true``).

Each run directory's ``metrics.jsonl`` is read with :func:`reslab.training.metrics.read_metrics`
and its ``config.json`` as JSON.  Runs whose configs are equal once ``"seed"`` is removed
are seeds of one setting and are drawn as one curve: the mean over the seeds at the
iterations that all of them logged, with a band from the lowest to the highest seed.
A run without ``config.json`` is a setting of its own.

:func:`figure` returns a :class:`matplotlib.figure.Figure` (no backend is selected);
:func:`write_html` writes a self-contained page with the figure and a table of the last
logged errors.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reslab.errors import ReslabError
from reslab.training.runpaths import RunPaths

METRICS = {"train_error": ("train", "--", 1.0), "val_error": ("val", "-", 2.0), "test_error": ("test", "-.", 1.4)}


@dataclass
class Run:
    path: Path
    config: dict[str, Any] | None
    rows: list[dict[str, Any]]


@dataclass
class Group:
    """Runs that differ only by seed."""

    label: str
    runs: list[Run] = field(default_factory=list)

    def series(self, metric: str) -> tuple[list[int], list[float], list[float], list[float]] | None:
        """``(iterations, mean, low, high)`` of ``metric`` over the seeds, at the iterations
        every seed logged it; None if some seed never logged it."""
        per_run = []
        for run in self.runs:
            d = {int(r["iteration"]): float(r[metric]) for r in run.rows
                 if isinstance(r.get(metric), (int, float)) and isinstance(r.get("iteration"), (int, float))}
            if not d:
                return None
            per_run.append(d)
        its = sorted(set.intersection(*(set(d) for d in per_run)))
        if not its:
            return None
        vals = [[d[i] for d in per_run] for i in its]
        return its, [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def load_run(run_dir: str | Path) -> Run:
    from reslab.training.metrics import read_metrics

    p = Path(run_dir)
    if not p.is_dir():
        raise ReslabError(f"{p}: no such run directory")
    rows = read_metrics(p)
    if not rows:
        raise ReslabError(f"{p}: no metrics.jsonl with any line; is it a reslab run directory?")
    cfg = None
    config = RunPaths(p).config
    if config.is_file():
        try:
            cfg = json.loads(config.read_text())
        except json.JSONDecodeError as err:
            raise ReslabError(f"{config}: not valid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(cfg, dict):
            raise ReslabError(f"{config}: not a JSON object")
    return Run(p, cfg, rows)


def _key(run: Run) -> str:
    if run.config is None:
        return f"dir:{run.path.resolve()}"
    return json.dumps({k: v for k, v in run.config.items() if k != "seed"}, sort_keys=True)


def group_runs(runs: list[Run]) -> list[Group]:
    """Seeds of one setting together, in the order first given; each labelled by the
    config entries that differ between the groups (else the model, else the directory)."""
    groups: dict[str, Group] = {}
    for r in runs:
        groups.setdefault(_key(r), Group("")).runs.append(r)
    gs = list(groups.values())
    cfgs = [g.runs[0].config or {} for g in gs]
    keys = sorted({k for c in cfgs for k in c if k != "seed"})
    differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]
    for g, c in zip(gs, cfgs):
        if g.runs[0].config is None:
            g.label = g.runs[0].path.name
        elif differ:
            g.label = ", ".join(f"{k}={c.get(k)}" if k != "model" else str(c.get(k)) for k in differ[:3])
        else:
            g.label = str(c.get("model", g.runs[0].path.name))
        n = len(g.runs)
        g.label += f" ({n} seeds)" if n > 1 else ""
    return gs


def _plain(text: str) -> str:
    """Text from a file (config values, directory names) shown as written: matplotlib reads
    ``$...$`` as mathtext and fails on a broken one (``$\\frac{$``) at draw time."""
    return text.replace("$", r"\$")


STYLE_NAMES = {"--": "dashed", "-": "solid", "-.": "dash-dot"}


def figure(groups: list[Group], metrics: tuple[str, ...] = ("train_error", "val_error", "test_error")):
    """Error (%) against iterations.  Validation and test errors are evaluations at a few
    iterations, so they carry a marker at each point; so does any series of fewer than two
    points, which a line alone would not show.  The title names only what is drawn."""
    from reslab.render import subplots

    fig, ax = subplots(1, 1, figsize=(7.5, 4.8))
    drawn: dict[str, str] = {}  # metric -> line style, in drawing order
    bands = False
    for i, g in enumerate(groups):
        color = f"C{i % 10}"
        for metric in metrics:
            s = g.series(metric)
            if s is None:
                continue
            its, mean, lo, hi = s
            name, ls, lw = METRICS[metric]
            marker = "o" if metric != "train_error" or len(its) < 2 else None
            ax.plot(its, [100 * v for v in mean], ls=ls, lw=lw, color=color, marker=marker, ms=3.5,
                    label=f"{_plain(g.label)}: {name}")
            if len(g.runs) > 1 and len(its) > 1:
                ax.fill_between(its, [100 * v for v in lo], [100 * v for v in hi], color=color, alpha=0.15, lw=0)
                bands = True
            drawn.setdefault(metric, ls)
    if not drawn:
        raise ReslabError("no run logged train_error, val_error or test_error: nothing to plot")
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    words = {"train_error": "training", "val_error": "validation", "test_error": "test"}
    ax.set_title(", ".join(f"{words[m]} ({STYLE_NAMES[ls]})" for m, ls in drawn.items())
                 + ("; bands: range over seeds" if bands else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def summary_rows(groups: list[Group]) -> list[tuple[str, ...]]:
    """Per group: seeds, last iteration, and the last logged train/val/test error (mean, range)."""
    rows = []
    for g in groups:
        cells = [g.label, str(len(g.runs))]
        last_it = ""
        for metric in METRICS:
            s = g.series(metric)
            if s is None:
                cells.append("-")
                continue
            its, mean, lo, hi = s
            last_it = str(its[-1])
            band = f" [{100 * lo[-1]:.2f}, {100 * hi[-1]:.2f}]" if len(g.runs) > 1 else ""
            cells.append(f"{100 * mean[-1]:.2f}%{band}")
        rows.append((cells[0], cells[1], last_it, *cells[2:]))
    return rows


def write_html(groups: list[Group], png: Path, path: str | Path) -> Path:
    from reslab.render import CSS, html_table

    e = html.escape
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    dirs = "".join(f"<li><code>{e(str(r.path))}</code></li>" for g in groups for r in g.runs)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>reslab training curves</title>"
            f"<style>{CSS}</style></head><body><h1>Training curves</h1>"
            f"<img alt='error against iterations' src='data:image/png;base64,{data}'>"
            "<p>Last logged error per setting: mean over seeds, [lowest, highest]. Test error appears only for "
            "runs trained with <code>eval_test=true</code>; it never selected a checkpoint.</p>"
            + html_table(["setting", "seeds", "iteration", "train error", "val error", "test error"], summary_rows(groups))
            + f"<details><summary>runs</summary><ul>{dirs}</ul></details></body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
