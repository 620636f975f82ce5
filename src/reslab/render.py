"""Rendering shared by every page and figure reslab writes: the experiment report, the probe
report, ``reslab eval``'s confusion matrix and ``reslab plot``'s curves.

Figures are built as :class:`matplotlib.figure.Figure` objects, which need no backend and are
not registered with pyplot: nothing here switches a notebook's backend, and nothing has to be
closed.  Saving goes through the Agg canvas that ``Figure.savefig`` picks by itself.

Each experiment's ``NAME_plots.py`` has ``figures(results) -> {name: Figure}`` (for a notebook)
and ``plot(results, out_dir) -> [png paths]`` (for the report), which saves them with
:func:`save_all`.  This module imports nothing else from reslab, so any layer may use it.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- figures


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kw):
    """``(figure, axes)`` like ``pyplot.subplots``, but a standalone Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def colormap(name: str):
    """A registered colormap by name (``"viridis_r"``, ``"Reds"``, ...)."""
    import matplotlib

    return matplotlib.colormaps[name]


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` and return the path."""
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path


def save_all(figs: dict[str, Any], out_dir: str | Path, dpi: int = 110) -> list[Path]:
    """Save ``{name: figure}`` as ``out_dir/NAME.png`` (the folder is created); the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, out / f"{name}.png", dpi) for name, fig in figs.items()]


# ---------------------------------------------------------------- HTML

CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.7em}h2{border-top:1px solid #ddd;padding-top:1em;margin-top:2em}
blockquote{margin:0;padding:.5em 1em;border-left:4px solid #8ab;background:#f5f8fa}
.ok{color:#176b2c;font-weight:600}.partly{color:#9a5b00;font-weight:600}.no{color:#a3171b;font-weight:600}
.unresolved{color:#555;font-weight:600}td{overflow-wrap:anywhere}
.scope{color:#444;font-size:.92em;background:#f7f7f2;padding:.3em .6em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:.9em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}details{margin:.5em 0}code{background:#f3f3f3}"""


def html_table(head: list[str], rows: list) -> str:
    """An HTML table; every cell is escaped."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


# ---------------------------------------------------------------- JSON

def jsonable(obj: Any) -> Any:
    """``obj`` with tensors and numpy values as lists and numbers, keys as strings, NaN as
    None and infinities as ``"inf"``/``"-inf"`` (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return jsonable(obj.tolist())
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return "inf" if obj > 0 else "-inf"
    return obj


def printable(text: object) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, carriage returns,
    newlines that would forge extra lines) shown as escapes, e.g. ``\\x1b``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
