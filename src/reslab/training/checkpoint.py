"""Checkpoints: atomic writes, safe loads, safetensors export.

A checkpoint holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``, which refuses anything that would run code.  Writes go to
a temporary file that is then renamed over the target, so a kill at any moment leaves
either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.training.runpaths import RunPaths

LATEST = RunPaths.LATEST  # kept as names of this module: resume and the loop read them here
BEST = RunPaths.BEST


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP (``module.``) and torch.compile (``_orig_mod.``) wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    # No CUDA RNG state: training draws no random numbers on the GPU (the loader uses a
    # seeded CPU generator), and per-GPU states would not restore on a machine with fewer GPUs.
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    try:
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
        p = state["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, AttributeError) as err:
        raise ReslabError(f"checkpoint RNG state cannot be restored ({type(err).__name__}: "
                          f"{_first_line(err)[:120]})") from None


def atomic_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; refuse anything else with one line.

    Checked here, for every checkpoint: a dict whose ``model`` maps names to tensors and whose
    ``config`` (when present) is a valid config.  Training state is checked by
    :func:`check_resume_state` and against the built model by :func:`check_model_state`.
    """
    path = Path(path)
    if not path.is_file():
        raise ReslabError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise ReslabError(f"{path}: not a readable checkpoint (the file is empty)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = _first_line(err)
        raise ReslabError(f"{path}: refused: the file holds more than tensors and plain values and could run code "
                          f"when loaded ({first[:160]})") from None
    except Exception as err:  # noqa: BLE001 - a damaged file raises many types; all mean "not readable"
        raise ReslabError(f"{path}: not a readable checkpoint ({type(err).__name__}: {_first_line(err)[:160]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise ReslabError(f"{path}: not a reslab checkpoint (no 'model' entry)")
    weights = obj["model"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise ReslabError(f"{path}: 'model' must map parameter names to tensors, got {type(weights).__name__}")
    if "config" in obj:
        obj["config"] = _check_config(obj["config"], path)
        _check_weights_fit_config(weights, obj["config"], path)
    return obj


def _check_weights_fit_config(weights: dict, cfg_dict: dict, path: Path) -> None:
    """The weights have the names and shapes of the model their config describes (built on
    the meta device: no memory, no data), so that nobody loads them into another model."""
    from reslab.data import get_info
    from reslab.models.registry import build_model
    from reslab.training.config import from_dict

    cfg = from_dict(cfg_dict)
    info = get_info(cfg.dataset)
    try:
        with torch.device("meta"):
            model = build_model(cfg, info.num_classes, info.num_channels)
    except ReslabError:
        raise
    except Exception:  # noqa: BLE001 - an init that has no meta kernel: the loader checks the real model
        return
    check_model_state(weights, model, path, f"{cfg.model} (its config)")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _check_config(cfg: Any, path: Path) -> dict[str, Any]:
    from reslab.training.config import from_dict

    if not isinstance(cfg, dict):
        raise ReslabError(f"{path}: 'config' must be a dict of config keys, got {type(cfg).__name__}")
    try:
        from_dict(cfg)
    except ReslabError as err:
        raise ReslabError(f"{path}: its config is not valid: {err}") from None
    return cfg


# The keys a latest checkpoint holds, with their types (bool is refused where int is meant).
_RESUME_KEYS = {"model": dict, "optimizer": dict, "schedule": dict, "iteration": int, "epoch": int,
                "position": int, "best_val_error": (float, type(None)), "elapsed": (float, int), "rng": dict,
                "config": dict}


def _is(value: Any, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def check_resume_state(state: dict[str, Any], path: str | Path, iterations: int) -> None:
    """A latest checkpoint has every key a resume needs, each of the right type and range.
    ``iterations`` is the run's total (from its config).  One line on the first problem."""
    missing = [k for k in _RESUME_KEYS if k not in state]
    if missing:
        raise ReslabError(f"{path}: not a resumable checkpoint: lacks {', '.join(missing)}")
    for key, kind in _RESUME_KEYS.items():
        if not _is(state[key], kind):
            raise ReslabError(f"{path}: checkpoint entry {key!r} has type {type(state[key]).__name__}")
    it = state["iteration"]
    if not 0 <= it <= iterations:
        raise ReslabError(f"{path}: checkpoint iteration {it} is outside the run's 0..{iterations}")
    if state["epoch"] < 0 or state["position"] < 0:
        raise ReslabError(f"{path}: checkpoint epoch {state['epoch']} / position {state['position']} is negative")
    bv = state["best_val_error"]
    if bv is not None and not 0 <= bv <= 1:
        raise ReslabError(f"{path}: checkpoint best_val_error {bv} is not an error rate in [0, 1]")
    if not 0 <= state["elapsed"] < float("inf"):
        raise ReslabError(f"{path}: checkpoint elapsed time {state['elapsed']} is not a finite duration")
    _check_schedule(state["schedule"], path)
    _check_rng(state["rng"], path)
    if "window" in state:
        _check_window(state["window"], path)


def _check_schedule(s: dict, path) -> None:
    ok = (_is(s.get("warming"), bool) and (s.get("warmup_ended_at") is None or _is(s.get("warmup_ended_at"), int))
          and isinstance(s.get("recent"), list) and all(_is(v, (float, int)) for v in s["recent"]))
    if not ok:
        raise ReslabError(f"{path}: checkpoint schedule state is malformed")


def _check_rng(r: dict, path) -> None:
    bad = ReslabError(f"{path}: checkpoint RNG state is malformed; the checkpoint is damaged")
    t, n, p = r.get("torch"), r.get("numpy"), r.get("python")
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.shape == torch.get_rng_state().shape):
        raise bad
    if not (isinstance(n, dict) and isinstance(n.get("keys"), torch.Tensor) and n["keys"].dtype == torch.int64
            and tuple(n["keys"].shape) == (624,) and _is(n.get("pos"), int) and 0 <= n["pos"] <= 624
            and _is(n.get("has_gauss"), int) and n["has_gauss"] in (0, 1) and _is(n.get("cached_gaussian"), float)):
        raise bad
    if not (bool((n["keys"] >= 0).all()) and bool((n["keys"] < 2 ** 32).all())):
        raise bad
    if not (isinstance(p, dict) and _is(p.get("version"), int) and isinstance(p.get("state"), list)
            and len(p["state"]) == 625 and all(_is(v, int) and 0 <= v < 2 ** 32 for v in p["state"])
            and (p.get("gauss") is None or _is(p.get("gauss"), float))):
        raise bad


def _check_window(w: Any, path) -> None:
    """The running sums of the metrics line being accumulated: per rank, loss and error sums
    over ``n`` iterations since the last line."""
    ok = (isinstance(w, dict) and set(w) == {"loss_sum", "err_sum", "n"} and _is(w["n"], int) and w["n"] >= 0
          and all(isinstance(w[k], list) and 1 <= len(w[k]) <= 1 << 16 and all(_is(v, float) for v in w[k])
                  for k in ("loss_sum", "err_sum"))
          and len(w["loss_sum"]) == len(w["err_sum"]))
    if not ok:
        raise ReslabError(f"{path}: checkpoint metrics window is malformed")


def check_model_state(weights: dict[str, torch.Tensor], model: nn.Module, path: str | Path, what: str) -> None:
    """The checkpoint's weights fit ``model`` (built from ``what``, e.g. the run's config):
    the same names and shapes.  One line naming the first difference."""
    expected = unwrap(model).state_dict()
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    if missing or extra:
        detail = f"lacks {missing[0]}" if missing else f"has {extra[0]}, which the model has not"
        raise ReslabError(f"{path}: weights do not fit {what} ({len(missing)} missing, {len(extra)} unexpected; "
                          f"e.g. it {detail}); a checkpoint of another model?")
    for k, v in expected.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise ReslabError(f"{path}: weights do not fit {what}: {k} is {tuple(weights[k].shape)}, "
                              f"the model's is {tuple(v.shape)}; a checkpoint of another model?")
        if weights[k].dtype.is_floating_point != v.dtype.is_floating_point:
            raise ReslabError(f"{path}: weights do not fit {what}: {k} has dtype {weights[k].dtype}")


def check_optimizer_state(sd: dict, opt: torch.optim.Optimizer, path: str | Path) -> None:
    """An SGD state dict that fits ``opt``: same groups and parameter counts, momentum buffers
    of the parameters' shapes, numeric hyper-parameters."""
    bad = f"{path}: checkpoint optimizer state does not fit this model"
    groups, state = sd.get("param_groups"), sd.get("state")
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(opt.param_groups):
        raise ReslabError(f"{bad} (malformed or wrong number of parameter groups)")
    params = []
    for saved, live in zip(groups, opt.param_groups):
        if not isinstance(saved, dict) or not isinstance(saved.get("params"), list) \
                or len(saved["params"]) != len(live["params"]):
            raise ReslabError(f"{bad} (a parameter group of another size)")
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            if key in saved and not (_is(saved[key], (float, int)) and saved[key] >= 0):
                raise ReslabError(f"{bad} ({key} is {saved[key]!r})")
        params += list(zip(saved["params"], live["params"]))
    index = {pid: p for pid, p in params if _is(pid, int)}
    if len(index) != len(params):
        raise ReslabError(f"{bad} (parameter ids are not distinct integers)")
    for pid, entry in state.items():
        if pid not in index or not isinstance(entry, dict):
            raise ReslabError(f"{bad} (state for unknown parameter {pid!r})")
        buf = entry.get("momentum_buffer")
        if buf is not None and not (isinstance(buf, torch.Tensor) and buf.shape == index[pid].shape):
            raise ReslabError(f"{bad} (momentum buffer of parameter {pid} has the wrong shape)")


def export_safetensors(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the bare model's weights and buffers as safetensors (atomic)."""
    from safetensors.torch import save

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    # Serialised here and written by atomic_write: safetensors' own file writing reports a
    # read-only or full disk as SafetensorError and leaves its own temporary file behind.
    atomic_write(path, save(state, metadata=metadata))
    os.chmod(path, new_file_mode())  # as any new file: a temporary file's 0o600 must not stick
    return path


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process umask."""
    try:
        with open("/proc/self/status") as f:  # reads the umask without changing it (Linux)
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
