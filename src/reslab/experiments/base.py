"""The contract every experiment follows, and what they share: config, context, verdict,
results file and conditions.

An experiment module ``reslab.experiments.NAME`` defines

* ``CLAIM: str``: the paper claim it tests, quoted with its source;
* ``Config``: a frozen dataclass extending :class:`ExperimentConfig` (validated once, in
  ``__post_init__``), and ``SCALES``: the preset settings per scale;
* ``config_for(scale, seeds=None, **overrides) -> Config``, via :func:`config_from_scales`;
* ``run(cfg, ctx) -> dict``: JSON-serialisable results built with :func:`make_results`;
* ``judge(cfg, data) -> dict``: the verdict, built with :func:`verdict` from the claim's
  parts, its checks and its findings (:mod:`reslab.experiments.verdicts`); each part quotes
  the sentence it tests and its criterion is fixed in code before the run;

and its figures live in the sibling ``NAME_plots.py`` with ``plot(results, out_dir) ->
[png paths]``, which reads saved results only.  It also declares its name, title, place and
command (``NAME``, ``TITLE``, ``IN_REPRODUCE``, ``ORDER``, ``HELP``, ``DESCRIPTION``, optionally
``add_flags``/``overrides``; see :mod:`reslab.experiments`): nothing else is edited to add one.

Results live in ``OUT/NAME/results.json`` beside the figures, so the report can be
rebuilt without training anything.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.render import jsonable
from reslab.training.host import conditions, torch_threads  # noqa: F401  (re-exported: experiments use them)

RESULTS_FILE = "results.json"
Progress = Callable[[str], None]

# Verdicts (parts, checks, findings, outcomes) live in reslab.experiments.verdicts.
from reslab.experiments.verdicts import (  # noqa: E402,F401  (re-exported: the contract's vocabulary)
    CONTRADICTED, NOT_JUDGED, NOT_REPRODUCED, NOT_RESOLVED, OUTCOMES, PARTLY, REPRODUCED, cannot_judge, check,
    finding, outcome, part, verdict, verdict_line)


# ---------------------------------------------------------------- config and context

@dataclass(frozen=True)
class ExperimentConfig:
    """Settings every experiment has.  Subclasses add theirs (all with defaults) and call
    ``super().__post_init__()`` from their own ``__post_init__``."""

    scales: ClassVar[tuple[str, ...]] = ("quick", "full")
    min_seeds: ClassVar[int] = 1

    scale: str = "quick"                # a preset of SCALES; overrides are applied on top of it
    seeds: int = 1                      # independent repeats: seeds 0 .. seeds-1
    threads: int | None = None          # torch CPU threads during the run (restored after); None: unchanged

    def __post_init__(self):
        if self.scale not in self.scales:
            raise ReslabError(f"unknown scale {self.scale!r}; valid: {', '.join(self.scales)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < self.min_seeds:
            raise ReslabError(f"seeds must be an integer >= {self.min_seeds}, got {self.seeds!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ReslabError(f"threads must be an integer >= 1 (or None), got {self.threads!r}")


def config_from_scales(config_cls, scales: dict[str, dict], name: str, scale: str, seeds: int | None,
                       overrides: dict[str, Any]):
    """``config_cls`` built from the preset ``scales[scale]``, then ``seeds``, then
    ``overrides`` (``None`` values are ignored); an unknown scale or setting is one line."""
    if scale not in scales:
        raise ReslabError(f"unknown scale {scale!r} for the {name} experiment; valid: {', '.join(scales)}")
    kw = {**scales[scale], "scale": scale, **{k: v for k, v in overrides.items() if v is not None}}
    if seeds is not None:
        kw["seeds"] = seeds
    valid = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(kw) - set(valid))
    if unknown:
        raise ReslabError(f"unknown setting(s) {unknown} for the {name} experiment; valid: {', '.join(valid)}")
    return config_cls(**kw)


@dataclass
class Context:
    """Where and how an experiment runs: not settings of the experiment itself."""

    out_dir: Path                       # OUT/NAME: results, figures and any run directories
    say: Progress = field(default=lambda _msg: None)  # one progress line per call
    quiet: bool = True                  # training: plain log lines instead of progress bars
    data_dir: str | None = None         # where dataset files are (None: reslab.data's search order)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)


def stderr_progress() -> Progress:
    """A progress callback: one line per message on stderr, with the elapsed time."""
    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


# ---------------------------------------------------------------- results

def make_results(name: str, claim: str, cfg: Any, data: dict[str, Any], verdict_: dict[str, Any],
                 seconds: float, scope: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results file's content.  ``scope`` is what the report prints beside the verdict:
    scale, data, budget and seeds, in words."""
    cfg_dict = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return {
        "experiment": name,
        "claim": claim,
        "config": cfg_dict,
        "scope": {"scale": cfg_dict.get("scale"), "seeds": cfg_dict.get("seeds"), **(scope or {})},
        "conditions": conditions(),
        "seconds": round(seconds, 2),
        "verdict": verdict_,
        "data": data,
    }


def save_results(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/results.json`` atomically and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    atomic_write(path, json.dumps(jsonable(results), indent=1))
    return path


def load_results(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise ReslabError(f"{path}: no results file; run the experiment with --out {Path(out_dir).parent} first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReslabError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
