"""Figures and numbers to HTML and Markdown, from saved results only:
:func:`reslab.report.build.build`."""
