"""Reading weights files without running code: safetensors headers and tensors, and the
state dict inside a reslab checkpoint, a safetensors file or a bare state dict."""

from __future__ import annotations

from pathlib import Path

import torch

from reslab.errors import ReslabError


def _unreadable(path: Path, err: Exception) -> ReslabError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ReslabError(f"{path}: not a readable safetensors file ({first[:160]})")


def safetensors_header(path: Path) -> tuple[dict[str, tuple[tuple[int, ...], torch.dtype]], dict[str, str]]:
    """Each tensor's (shape, dtype) and the metadata, from the header alone (no tensor data)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            found = {k: (tuple(f.get_slice(k).get_shape()), _dtype(f.get_slice(k).get_dtype())) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise _unreadable(path, err) from None
    return found, meta


def _dtype(name: str) -> torch.dtype:
    """safetensors' dtype names; what torch does not know counts as not floating point."""
    known = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}
    return known.get(name, torch.uint8)


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise _unreadable(path, err) from None
    return state, meta


def foreign_hint(obj) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and \
            any(str(k).startswith("module.layer1.") for k in obj["state_dict"]):
        return "; it looks like an akamaster checkpoint: `reslab weights import akamaster MODEL --file PATH`"
    if isinstance(obj, dict) and "layer1.0.conv1.weight" in obj and "fc.weight" in obj:
        return "; it looks like a chenyaofo state dict: `reslab weights import chenyaofo-cifar10 MODEL --file PATH`"
    return ""


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The reslab state dict in a reslab checkpoint, a safetensors file, or a bare state dict."""
    from reslab.weights.convert import torch_load_safe

    p = Path(path).expanduser()
    if not p.is_file():
        raise ReslabError(f"{p}: no such checkpoint file")
    if p.suffix == ".safetensors":
        return read_safetensors(p)[0]
    obj = torch_load_safe(p)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise ReslabError(f"{p}: holds no reslab state dict{foreign_hint(obj)}")
    return obj
