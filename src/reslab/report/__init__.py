"""Figures and numbers to HTML and Markdown, from saved results only."""

from reslab.report.build import build

__all__ = ["build"]
