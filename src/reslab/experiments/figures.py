"""The figure helpers, now in :mod:`reslab.render`; kept for the plot modules that still
import them from here."""

from reslab.render import colormap, save_all, save_figure, subplots  # noqa: F401
