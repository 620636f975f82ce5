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

LATEST = "latest.pt"
BEST = "best.pt"


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
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def atomic_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code; refuse anything else with one line."""
    path = Path(path)
    if not path.is_file():
        raise ReslabError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0]
        raise ReslabError(f"{path}: refused: the file holds more than tensors and plain values and could run code "
                          f"when loaded ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ReslabError(f"{path}: not a readable checkpoint ({str(err).strip().splitlines()[0][:160]})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise ReslabError(f"{path}: not a reslab checkpoint (no 'model' entry)")
    return obj


def export_safetensors(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the bare model's weights and buffers as safetensors (atomic)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
