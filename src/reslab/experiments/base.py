"""What every experiment shares: the results file, the run's conditions, the verdict,
and the CLI plumbing.

An experiment module ``reslab.experiments.NAME`` defines

* ``CLAIM: str``: the paper claim it tests, quoted with its source;
* ``Config``: a frozen dataclass with every setting that matters, including
  ``scale`` (``"quick"`` or ``"full"``) and ``seeds``;
* ``config_for(scale, seeds=None, **overrides) -> Config``;
* ``run(cfg, progress=None) -> dict``: JSON-serialisable results, built with
  :func:`make_results` so they carry the config, conditions and verdict;
* ``plot(results, out_dir) -> list[Path]``: PNG figures, from saved results only.

Results live in ``OUT/NAME/results.json`` beside the figures, so the report can be
rebuilt without training anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch

from reslab.errors import ReslabError

RESULTS_FILE = "results.json"
Progress = Callable[[str], None]


def conditions() -> dict[str, Any]:
    """The hardware and software a result was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    return info


def verdict(reproduced: bool, summary: str, **numbers: Any) -> dict[str, Any]:
    """A verdict computed from the experiment's own numbers."""
    return {"reproduced": bool(reproduced), "summary": summary, "numbers": numbers}


def make_results(name: str, claim: str, cfg: Any, data: dict[str, Any], verdict_: dict[str, Any],
                 seconds: float) -> dict[str, Any]:
    return {
        "experiment": name,
        "claim": claim,
        "config": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg),
        "conditions": conditions(),
        "seconds": round(seconds, 2),
        "verdict": verdict_,
        "data": data,
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and obj != obj:
        return None  # NaN is not JSON
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return "inf" if obj > 0 else "-inf"
    return obj


def save_results(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/results.json`` atomically and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(results), indent=1))
    os.replace(tmp, path)
    return path


def load_results(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise ReslabError(f"{path}: no results file; run the experiment with --out {Path(out_dir).parent} first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReslabError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def config_from_scales(config_cls, scales: dict[str, dict], name: str, scale: str, seeds: int | None,
                       overrides: dict[str, Any]):
    """``config_cls`` built from the preset ``scales[scale]``, then ``seeds``, then overrides;
    an unknown scale or setting is a one-line ReslabError."""
    if scale not in scales:
        raise ReslabError(f"unknown scale {scale!r}; valid: {', '.join(scales)}")
    kw = {**scales[scale], "scale": scale, **overrides}
    if seeds is not None:
        kw["seeds"] = seeds
    unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(config_cls)})
    if unknown:
        raise ReslabError(f"unknown setting(s) {unknown} for the {name} experiment")
    return config_cls(**kw)


def add_experiment_command(sub, name: str, *, help: str, description: str) -> None:
    """The ``reslab NAME`` command of an experiment that needs only the common flags."""

    def run(args) -> int:
        import importlib

        module = importlib.import_module(f"reslab.experiments.{name}")
        cfg = module.config_for(args.scale, seeds=args.seeds)  # ReslabError (exit 2) on bad input
        results = run_and_save(module, cfg, args.out, progress=stderr_progress(args.quiet))
        print_verdict(results)
        print(f"results and figures: {Path(args.out) / name}")
        return 0

    p = sub.add_parser(name, help=help, description=description)
    add_common_args(p, default_out="reslab-report")
    p.set_defaults(func=run)


def add_common_args(parser, *, default_out: str) -> None:
    """The flags every experiment command takes."""
    parser.add_argument("--out", default=default_out,
                        help=f"results directory; the experiment writes OUT/NAME/ (default: {default_out})")
    parser.add_argument("--scale", choices=["quick", "full"], default="quick",
                        help="quick: CPU-minutes demo; full: the paper's scale (default: quick)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="number of seeds (default: depends on the experiment and scale)")
    parser.add_argument("--quiet", action="store_true", help="plain log lines, no progress bar")


def print_verdict(results: dict[str, Any]) -> None:
    v = results["verdict"]
    mark = "REPRODUCED" if v["reproduced"] else "NOT REPRODUCED"
    print(f"[{results['experiment']}] {mark}: {v['summary']}")


def run_and_save(module, cfg, out_dir: str | Path, progress: Progress | None = None) -> dict[str, Any]:
    """Run an experiment module, save its results and figures under ``out_dir/NAME``."""
    name = module.__name__.rsplit(".", 1)[-1]
    target = Path(out_dir) / name
    import inspect

    extra = {"out_dir": target} if "out_dir" in inspect.signature(module.run).parameters else {}
    results = module.run(cfg, progress=progress, **extra)
    save_results(results, target)
    module.plot(results, target)
    return results


def stderr_progress(quiet: bool = False) -> Progress:
    """A progress callback: one line per message on stderr."""
    import sys

    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    say.quiet = quiet  # experiments that train pass it on: plain log lines instead of bars
    return say
