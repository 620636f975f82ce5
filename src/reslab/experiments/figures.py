"""Figures for the experiments' ``NAME_plots.py`` modules, without pyplot's global state.

Figures are built as :class:`matplotlib.figure.Figure` objects, which need no backend and are
not registered with pyplot: nothing here switches a notebook's backend, and nothing has to be
closed.  Saving goes through the Agg canvas that ``Figure.savefig`` picks by itself.

Each ``NAME_plots.py`` has ``figures(results) -> {name: Figure}`` (for a notebook) and
``plot(results, out_dir) -> [png paths]`` (for the report), which saves them with :func:`save_all`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
