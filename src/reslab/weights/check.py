"""Checks a weights file passes before any of its model is allocated.

A file names its model in metadata (``arch``, or the trainer's config) and the names would
otherwise go straight to a constructor: a 5 KB file asking for a 1202-layer net at 16x width
or a billion classes would make reslab allocate gigabytes before finding that the file's
tensors do not fit.  So, in order:

1. :func:`check_arch`: the model is registered, every option is one its spec accepts, the
   options that set sizes are within caps far above any real CIFAR/ImageNet net, and nothing
   asks for more weights (``pretrained``, ``checkpoint_path``);
2. :func:`meta_model`: the model built on the ``meta`` device (shapes, no memory);
3. :func:`check_tensors`: the file's tensors have exactly its names and shapes, and a
   floating-point dtype wherever the model holds floats (a bool or int64 weight would be
   silently cast by ``load_state_dict``).

Only then is the real model built and filled.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.models.registry import spec
from reslab.models.spec import ModelSpec

# Far above any net reslab reproduces (ResNet-1202, 1,000 classes, RGB, width 1).
MAX_CIFAR_DEPTH = 1202
MAX_WIDTH = 4.0
MAX_CLASSES = 100_000
MAX_IN_CHANNELS = 16
_CAPS = {"num_classes": (int, MAX_CLASSES), "in_channels": (int, MAX_IN_CHANNELS), "width": (float, MAX_WIDTH)}
_FORBIDDEN = ("pretrained", "checkpoint_path")  # weights must not ask for other weights


def check_arch(arch, path: str | Path) -> tuple[ModelSpec, dict]:
    """The spec and constructor options of ``arch`` (``{"model": NAME, **options}``), or
    one line saying what is wrong with it; nothing is built."""
    if not isinstance(arch, dict) or not isinstance(arch.get("model"), str):
        raise ReslabError(f"{path}: its architecture names no model")
    options = {k: v for k, v in arch.items() if k != "model"}
    for key in _FORBIDDEN:
        if key in options:
            raise ReslabError(f"{path}: its metadata carries {key!r}; a weights file may not ask for other weights")
    try:
        s = spec(arch["model"])
    except ReslabError as err:
        raise ReslabError(f"{path}: {err}") from None
    if s.family == "mlp":
        raise ReslabError(f"{path}: loading mlp weights is not supported")
    unknown = sorted(set(options) - set(s.kwargs))
    if unknown:
        raise ReslabError(f"{path}: option {str(unknown[0])[:40]!r} is not one {s.name} accepts; "
                          f"valid: {', '.join(s.kwargs)}")
    if s.family == "cifar" and s.depth > MAX_CIFAR_DEPTH:
        raise ReslabError(f"{path}: {s.name} is deeper than the {MAX_CIFAR_DEPTH} layers reslab loads")
    for key, (kind, cap) in _CAPS.items():
        if key in options:
            _check_size(key, options[key], kind, cap, path)
    return s, options


def _check_size(key: str, value, kind, cap, path) -> None:
    ok_type = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        (kind is float or isinstance(value, int))
    if not ok_type or not 0 < value <= cap:
        shown = repr(value) if isinstance(value, (int, float)) else f"a {type(value).__name__}"
        raise ReslabError(f"{path}: {key} {shown[:40]} is not valid; weights load with {key} in "
                          f"(0, {cap:g}]" + (", an integer" if kind is int else ""))


def meta_model(s: ModelSpec, options: dict, path: str | Path) -> nn.Module:
    """The model on the ``meta`` device: its shapes without its memory."""
    try:
        with torch.device("meta"):
            return s.build(**options)
    except ReslabError as err:
        raise ReslabError(f"{path}: {err}") from None


def check_tensors(found: dict[str, tuple[tuple[int, ...], torch.dtype]], model: nn.Module, path: str | Path,
                  what: str = "the model its metadata describes") -> None:
    """``found`` (name -> (shape, dtype), read from the file's header) fits ``model``
    (``what``, in messages) exactly."""
    want = model.state_dict()
    missing = [k for k in want if k not in found]
    extra = [k for k in found if k not in want]
    if missing or extra:
        detail = f"lacks {missing[0]}" if missing else f"has {str(extra[0])[:80]}, which the model has not"
        raise ReslabError(f"{path}: the weights do not fit {what} ({len(missing)} missing, {len(extra)} unexpected; e.g. it {detail})")
    for key, ref in want.items():
        shape, dtype = found[key]
        if tuple(shape) != tuple(ref.shape):
            raise ReslabError(f"{path}: the weights do not fit {what}: tensor {key} has shape {tuple(shape)}, "
                              f"the model's is {tuple(ref.shape)}")
        if ref.dtype.is_floating_point and not dtype.is_floating_point:
            raise ReslabError(f"{path}: tensor {key} has dtype {dtype}; weights must be floating point")
        if not ref.dtype.is_floating_point and (dtype.is_floating_point or dtype == torch.bool):
            raise ReslabError(f"{path}: tensor {key} has dtype {dtype}; the model's is {ref.dtype}")


def header_of(state: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


def build_checked(arch, found, read_state, path: str | Path) -> nn.Module:
    """The model ``arch`` describes, filled with ``read_state()``, after every check above
    (``found``: the file's tensor names, shapes and dtypes).  Eval mode."""
    s, options = check_arch(arch, path)
    check_tensors(found, meta_model(s, options, path), path, f"{s.name}, the model its metadata describes")
    model = s.build(**options)
    try:
        model.load_state_dict(read_state())
    except RuntimeError as err:
        raise ReslabError(f"{path}: the weights do not fit {s.name} ({' '.join(str(err).split())[:200]})") from None
    return model.eval()
