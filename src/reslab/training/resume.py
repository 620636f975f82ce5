"""Resuming a run: every check of a latest checkpoint, and its restoration, in one place.

:func:`load` reads the run's latest checkpoint and decides the run's config from it (checked
against the run's ``config.json``); :func:`check_fits` checks it against the model and the
loader built from that config; :func:`restore` and :func:`restore_window` put its state back.
Resume restores everything that decides the next step, so an interrupted run finishes with
the same weights, bit for bit, as one that never stopped (CPU, deterministic settings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.training import checkpoint as ckpt
from reslab.training.config import TrainConfig, from_dict
from reslab.training.runpaths import RunPaths


def latest_path(run_dir: str | Path) -> Path:
    return RunPaths(run_dir).latest


def require_checkpoint(run_dir: str | Path) -> None:
    """A run to resume has a latest checkpoint; one line otherwise."""
    if not latest_path(run_dir).is_file():
        raise ReslabError(f"--resume {run_dir}: no checkpoints/{ckpt.LATEST} there")


def load(run_dir: Path) -> tuple[dict, TrainConfig]:
    """The run's latest checkpoint, checked (keys, types, ranges, RNG state), and the run's
    config, taken from it and matched against the run's ``config.json``: a checkpoint of
    another run is refused, never resumed as what it claims to be."""
    require_checkpoint(run_dir)
    path = latest_path(run_dir)
    state = ckpt.load(path)
    if "config" not in state:
        raise ReslabError(f"{path}: not a resumable checkpoint: lacks config")
    cfg = from_dict(state["config"])
    ckpt.check_resume_state(state, path, cfg.iterations)
    saved = RunPaths(run_dir).config
    if saved.is_file():
        try:
            on_disk = json.loads(saved.read_text())
            if not isinstance(on_disk, dict):
                raise ValueError(f"a {type(on_disk).__name__}, not an object")
            on_disk = from_dict(on_disk).to_dict()
        except (ValueError, RecursionError, OSError) as err:  # ReslabError is a ValueError
            raise ReslabError(f"{saved}: not a valid run config ({' '.join(str(err).split())[:120]}); "
                              "the run directory is damaged") from None
        mine = cfg.to_dict()
        diff = [k for k in mine if mine[k] != on_disk.get(k)]
        if diff:
            k = diff[0]
            raise ReslabError(f"{path}: belongs to another run: its config differs from {saved} in "
                              f"{', '.join(diff[:5])} (e.g. {k} {mine[k]!r} vs {on_disk.get(k)!r}); not resuming")
    # The resumed run rewrites metrics.jsonl; a damaged one is refused now, before anything is written.
    from reslab.training.metrics import read_metrics

    read_metrics(run_dir)
    return state, cfg


def check_fits(state: dict, model: nn.Module, batches_per_epoch: int, run_dir: Path) -> None:
    """The checkpoint's weights fit the model built from its config, and its loader position
    lies within an epoch."""
    path = latest_path(run_dir)
    ckpt.check_model_state(state["model"], model, path, f"{state['config']['model']} (the run's config)")
    if state["position"] > batches_per_epoch:
        raise ReslabError(f"{path}: loader position {state['position']} is beyond the "
                          f"{batches_per_epoch} batches of an epoch; the checkpoint is damaged")


@dataclass(frozen=True)
class Position:
    iteration: int
    epoch: int
    position: int
    best_val_error: float | None
    elapsed: float


def restore(state: dict, model: nn.Module, opt: torch.optim.Optimizer, sched, fused: bool | None,
            run_dir: Path) -> Position:
    """Model, optimizer, schedule and RNG states back as saved; where the run stood."""
    path = latest_path(run_dir)
    ckpt.check_optimizer_state(state["optimizer"], opt, path)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise ReslabError(f"{path}: cannot restore the run from it ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:160]})") from None
    for g in opt.param_groups:  # the saved groups carry the saving device's kernel choice
        g["fused"], g["foreach"] = fused, None
    ckpt.set_rng_state(state["rng"])
    return Position(state["iteration"], state["epoch"], state["position"], state["best_val_error"], state["elapsed"])


def restore_window(state: dict, info, loss_sum: torch.Tensor, err_sum: torch.Tensor) -> int:
    """The running sums of the metrics line being accumulated when the checkpoint was saved
    (this rank's; their mean if the world size changed); returns their iteration count."""
    if "window" not in state:  # checkpoints before reslab 0.1.x have no window
        return 0
    w = state["window"]
    r = info.rank if len(w["loss_sum"]) == info.world_size else None  # else: another world size
    loss_sum.fill_(w["loss_sum"][r] if r is not None else sum(w["loss_sum"]) / len(w["loss_sum"]))
    err_sum.fill_(w["err_sum"][r] if r is not None else sum(w["err_sum"]) / len(w["err_sum"]))
    return w["n"]
