"""One module per seed claim, on the contract of :mod:`reslab.experiments.base`:
``NAME.py`` (claim, config, measurement, judgement) and ``NAME_plots.py`` (figures).

Registering an experiment is one line in :data:`EXPERIMENTS` (name → report title).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

EXPERIMENTS: dict[str, str] = {
    "vanishing": "Vanishing gradients",
    "exploding": "Exploding gradients",
    "shattered": "Shattered gradients (Balduzzi et al. 2017)",
    "degradation": "The degradation problem (He et al. 2016)",
}


def load(name: str) -> ModuleType:
    """The experiment module ``reslab.experiments.NAME``."""
    from reslab.errors import ReslabError

    if name not in EXPERIMENTS:
        raise ReslabError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"reslab.experiments.{name}")


def run_and_save(name: str, cfg: Any, out: str | Path, *, say=None, quiet: bool = True,
                 data_dir: str | None = None) -> dict[str, Any]:
    """Run experiment ``name`` with ``cfg``; save ``OUT/NAME/results.json`` and its figures."""
    from reslab.experiments import base

    module = load(name)
    ctx = base.Context(Path(out) / name, say=say or (lambda _m: None), quiet=quiet, data_dir=data_dir)
    with base.torch_threads(cfg.threads):
        results = module.run(cfg, ctx)
    base.save_results(results, ctx.out_dir)
    importlib.import_module(f"reslab.experiments.{name}_plots").plot(results, ctx.out_dir)
    return results
