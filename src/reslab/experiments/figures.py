"""Figures for the experiments' ``NAME_plots.py`` modules, without pyplot's global state.

Figures are built as :class:`matplotlib.figure.Figure` objects, which need no backend and are
not registered with pyplot: nothing here switches a notebook's backend, and nothing has to be
closed.  Saving goes through the Agg canvas that ``Figure.savefig`` picks by itself.
"""

from __future__ import annotations

from pathlib import Path


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
