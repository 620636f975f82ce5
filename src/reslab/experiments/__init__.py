"""One module per claim, on the contract of :mod:`reslab.experiments.base`: ``NAME.py``
(claim, config, measurement, judgement, and how it presents itself) and ``NAME_plots.py``
(figures).

An experiment is found, not registered: every module here with a sibling ``NAME_plots.py``
is one.  It declares

* ``NAME`` (its results folder, ``OUT/NAME``), ``TITLE`` (the report's heading),
  ``IN_REPRODUCE`` (whether ``reslab reproduce`` runs it) and ``ORDER`` (its place in the
  CLI's help and the report; lower first);
* ``HELP`` and ``DESCRIPTION``: its command's one-line help and ``--help`` text; the command is
  ``reslab NAME`` with ``_`` written ``-`` (:mod:`reslab.commands._experiment` builds it);
* optionally ``add_flags(parser)`` and ``overrides(args) -> dict``: its own flags, and the
  config overrides they give.

:data:`EXPERIMENTS` (name -> title, in order) is computed from the modules on each access.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

PLOTS_SUFFIX = "_plots"
DECLARED = ("NAME", "TITLE", "IN_REPRODUCE", "ORDER", "HELP", "DESCRIPTION")


def names() -> list[str]:
    """Every experiment module's name, in ``ORDER``."""
    found = {m.name for m in pkgutil.iter_modules(__path__)}
    mods = [n for n in found if not n.endswith(PLOTS_SUFFIX) and n + PLOTS_SUFFIX in found]
    return sorted(mods, key=lambda n: (declared(n, "ORDER"), n))


_REQUIRED = object()


def declared(name: str, attr: str, default: Any = _REQUIRED) -> Any:
    """``attr`` as experiment ``name`` declares it, else ``default``; a module that lacks a
    required declaration is one line."""
    module = importlib.import_module(f"{__name__}.{name}")
    if hasattr(module, attr):
        return getattr(module, attr)
    if default is not _REQUIRED:
        return default
    from reslab.errors import ReslabError

    raise ReslabError(f"experiment module {module.__name__} declares no {attr} (every experiment declares "
                      f"{', '.join(DECLARED)})")


def __getattr__(attr: str):
    if attr == "EXPERIMENTS":  # computed, so a module added at run time (a test's) is seen
        return {n: declared(n, "TITLE") for n in names()}
    if attr == "REPRODUCE":    # what `reslab reproduce` runs, in order
        return [n for n in names() if declared(n, "IN_REPRODUCE")]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def load(name: str) -> ModuleType:
    """The experiment module ``reslab.experiments.NAME``."""
    from reslab.errors import ReslabError

    valid = names()
    if name not in valid:
        raise ReslabError(f"unknown experiment {name!r}; valid: {', '.join(valid)}")
    return importlib.import_module(f"{__name__}.{name}")


def run_and_save(name: str, cfg: Any, out: str | Path, *, say=None, quiet: bool = True,
                 data_dir: str | None = None) -> dict[str, Any]:
    """Run experiment ``name`` with ``cfg``; save ``OUT/NAME/results.json`` and its figures."""
    from reslab.experiments import base

    module = load(name)
    ctx = base.Context(Path(out) / name, say=say or (lambda _m: None), quiet=quiet, data_dir=data_dir)
    with base.torch_threads(cfg.threads):
        results = module.run(cfg, ctx)
    base.save_results(results, ctx.out_dir)
    importlib.import_module(f"{__name__}.{name}{PLOTS_SUFFIX}").plot(results, ctx.out_dir)
    return results
