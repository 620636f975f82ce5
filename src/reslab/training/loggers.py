"""Where a run's metrics lines go besides ``metrics.jsonl`` (always written, by
:class:`reslab.training.metrics.MetricsLogger`):

- **TensorBoard**, when the ``tensorboard`` package is installed: every number as a scalar,
  ``grad_norms/<module>`` per module, and the run's config as hparams (with the last
  train/validation error) when the run closes; events in ``RUN_DIR/tb``;
- **Weights & Biases**, only when asked for: the environment variable ``RESLAB_WANDB`` names
  the W&B project (``RESLAB_WANDB=myproject reslab train ...``; ``1`` means project ``reslab``).  Installing ``wandb`` alone
  turns nothing on: a run, a test or an experiment must not try to reach a server (or stop
  at "no API key") because some other package pulled wandb in.  An environment variable,
  not a config key, because it says where metrics go, not what is trained: it reaches the
  CLI, ``reslab.train()``, banks and experiment workers alike, and is not saved in
  ``config.json``.  Then ``wandb.init(project=..., dir=RUN_DIR, config=...)`` in whatever
  mode wandb is set to (``WANDB_MODE=offline`` keeps it on disk, ``WANDB_MODE=disabled``
  turns it off); when ``init`` fails (no login) the header says why and the run goes on;
- **the terminal**: a tqdm bar when stderr is a terminal and the run is not quiet; otherwise
  one INFO record per metrics line on the ``reslab`` logger (:mod:`reslab.logs`).

Each sink has ``log(record)`` and ``close()``; :func:`open_sinks` returns those that are on
and a header phrase naming them, and each one that is off with the reason.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from reslab.training.runpaths import RunPaths

log = logging.getLogger("reslab.train")

WANDB_SWITCH = "RESLAB_WANDB"  # the W&B project ("1": project "reslab"); unset, empty or "0": W&B off


class Off(Exception):
    """A sink that is off, and why (shown in the run header)."""


def _config(run_dir: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(RunPaths(run_dir).config.read_text())
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


class TensorBoard:
    name = "TensorBoard"

    def __init__(self, run_dir: Path, start: int):
        from torch.utils.tensorboard import SummaryWriter  # ImportError without the tensorboard package

        self.where = RunPaths(run_dir).tb
        self._w = SummaryWriter(str(self.where), purge_step=start)
        self._cfg, self._last = _config(run_dir), {}

    def log(self, record: dict[str, Any]) -> None:
        it = record["iteration"]
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("iteration", "epoch"):
                self._w.add_scalar(k, v, it)
                self._last[k] = v
            elif isinstance(v, dict):  # grad_norms: one scalar per module
                for name, x in v.items():
                    self._w.add_scalar(f"{k}/{name or 'root'}", x, it)

    def close(self) -> None:
        # hparams take scalars only; the config's tuples and None become strings
        hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in self._cfg.items()}
        final = {f"hparam/{k}": self._last.get(k, math.nan) for k in ("train_error", "val_error")}
        if hp:
            self._w.add_hparams(hp, final, run_name=".")
        self._w.close()


class WandB:
    name = "W&B"

    def __init__(self, run_dir: Path, start: int):
        project = wandb_project()
        if project is None:
            raise Off(f"set {WANDB_SWITCH}=PROJECT to log to Weights & Biases")
        if os.environ.get("WANDB_MODE", "").lower() == "disabled":
            raise Off("WANDB_MODE=disabled")
        import wandb  # ImportError without the wandb package

        self.where = RunPaths(run_dir).wandb
        # console="off": wandb must not wrap sys.stdout/stderr (the terminal is the logger's)
        # mode read now, not when wandb first set itself up in this process
        self._run = wandb.init(project=project, dir=str(run_dir), name=run_dir.name, config=_config(run_dir),
                               mode=os.environ.get("WANDB_MODE") or None,
                               settings=wandb.Settings(console="off", silent=True))

    def log(self, record: dict[str, Any]) -> None:
        flat = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "iteration"}
        for k, v in record.items():
            if isinstance(v, dict):
                flat.update({f"{k}/{name or 'root'}": x for name, x in v.items()})
        self._run.log(flat, step=record["iteration"])

    def close(self) -> None:
        self._run.finish()


def wandb_project() -> str | None:
    """The W&B project named by ``RESLAB_WANDB`` ("1": ``reslab``), or None (W&B off)."""
    project = os.environ.get(WANDB_SWITCH, "").strip()
    return None if project in ("", "0") else "reslab" if project == "1" else project


class Terminal:
    """A progress bar (stderr is a terminal, not quiet) or one log record per metrics line."""

    name = "terminal"
    _SHORT = {"loss": "train_loss", "err": "train_error", "val": "val_error", "img/s": "images_per_s"}

    def __init__(self, total: int, start: int, quiet: bool):
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, file=sys.stderr,
                             smoothing=0.1)

    def log(self, record: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.set_postfix({k: f"{record[v]:.3g}" for k, v in self._SHORT.items() if v in record},
                                  refresh=False)
        line = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}=({len(v)} modules)"
                        if isinstance(v, dict) else f"{k}={v}" for k, v in record.items())
        # under a bar the line is for log files only (DEBUG); otherwise it is the progress (INFO)
        log.log(logging.DEBUG if self._bar is not None else logging.INFO, f"{time.strftime('%H:%M:%S')} {line}")

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def open_sinks(run_dir: Path, start: int) -> tuple[list, str]:
    """The optional sinks that are installed and start, and a header phrase such as
    ``"metrics.jsonl, TensorBoard (runs/r/tb); W&B off (not installed)"``."""
    sinks, on, off = [], [RunPaths.METRICS], []
    for kind, hint in ((TensorBoard, "pip install tensorboard"), (WandB, "pip install wandb")):
        try:
            sink = kind(run_dir, start)
        except ImportError:
            off.append(f"{kind.name} off ({hint})")
            continue
        except Off as why:
            off.append(f"{kind.name} off ({why})")
            continue
        except Exception as err:  # noqa: BLE001 - an optional logger must not stop the run (wandb: no login)
            off.append(f"{kind.name} off ({type(err).__name__}: {' '.join(str(err).split())[:80]})")
            continue
        sinks.append(sink)
        on.append(f"{kind.name} ({sink.where})")
    return sinks, ", ".join(on) + ("; " + ", ".join(off) if off else "")
