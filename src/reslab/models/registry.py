"""One registry: a model name to its constructor.

Names: ``resnet20/32/44/56/110/1202`` and ``plain…`` twins (CIFAR, He et al. §4.2),
``resnet18/34/50/101/152`` and ``plain…`` twins (ImageNet, Table 1), and ``mlp``
(the scalar nets of Balduzzi et al. 2017).  Any other 6n+2 depth is reachable as
``cifar-resnetN`` / ``cifar-plainN`` (``resnet50`` and ``resnet152`` mean the ImageNet nets).
"""

from __future__ import annotations

import inspect
import re
import sys
from functools import partial
from typing import Callable

from torch import nn

from reslab.errors import ReslabError
from reslab.models.resnet import CIFAR_PAPER_DEPTHS, IMAGENET_LAYOUTS, cifar_resnet, imagenet_resnet, is_cifar_depth


def _mlp(**kwargs):
    from reslab.models.mlp import mlp

    return mlp(**kwargs)


def _registry() -> dict[str, Callable[..., nn.Module]]:
    reg: dict[str, Callable[..., nn.Module]] = {}
    for kind, residual in (("resnet", True), ("plain", False)):
        for d in CIFAR_PAPER_DEPTHS:
            reg[f"{kind}{d}"] = partial(cifar_resnet, d, residual=residual)
        for d in IMAGENET_LAYOUTS:
            reg[f"{kind}{d}"] = partial(imagenet_resnet, d, residual=residual)
    reg["mlp"] = _mlp
    return reg


MODELS = _registry()
_CIFAR_NAME = re.compile(r"cifar-(resnet|plain)(\d+)$")


def list_models() -> list[str]:
    return list(MODELS)


def model_family(name: str) -> str:
    """``"cifar"``, ``"imagenet"`` or ``"mlp"``."""
    if name == "mlp":
        return "mlp"
    if _CIFAR_NAME.match(name):
        return "cifar"
    builder = _lookup(name)
    return "cifar" if builder.func is cifar_resnet else "imagenet"


def _lookup(name: str):
    if name in MODELS:
        return MODELS[name]
    m = _CIFAR_NAME.match(name)
    if m:
        depth = int(m.group(2))
        if not is_cifar_depth(depth):
            raise ReslabError(f"model {name!r}: CIFAR ResNet depth must be 6n+2 with n >= 1 (e.g. 8, 14, 20, 56), got {depth}")
        return partial(cifar_resnet, depth, residual=m.group(1) == "resnet")
    m = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if m:
        raise ReslabError(
            f"model {name!r}: depth {m.group(2)} is not a paper depth; CIFAR depths are 6n+2 "
            f"({', '.join(map(str, CIFAR_PAPER_DEPTHS))}, or any 6n+2 as cifar-{m.group(1)}N), "
            f"ImageNet depths are {', '.join(map(str, IMAGENET_LAYOUTS))}")
    raise ReslabError(f"unknown model {name!r}; valid: {', '.join(MODELS)}, or cifar-resnetN / cifar-plainN for N = 6n+2")


def create_model(name: str, pretrained: bool | str = False, checkpoint_path: str | None = None,
                 **kwargs) -> nn.Module:
    """Build a model by name; keyword arguments go to its constructor.

    Weights follow timm's convention: ``pretrained=True`` loads the default published
    weights for ``name`` (or those of the tag in ``"resnet56.akamaster"``), a string names
    the source (``"akamaster"``, ``"chenyaofo-cifar10"``, ``"chenyaofo-cifar100"``; see
    ``reslab weights list``); the file is downloaded once into the user cache and checked
    against its pinned hash.  ``checkpoint_path`` loads a reslab checkpoint, a safetensors
    file or a bare state dict into the model built from ``name`` and ``kwargs``.  As in
    timm, the model is returned in training mode: call ``.eval()`` for inference.

    >>> create_model("resnet20", num_classes=10, in_channels=1).stage_names
    ['stage1', 'stage2', 'stage3']
    """
    tag = None
    if "." in name:
        name, tag = name.split(".", 1)
    builder = _lookup(name)
    target = builder.func if isinstance(builder, partial) else None
    if target is not None:
        allowed = [p for p in inspect.signature(target).parameters if p not in ("depth",) and p not in builder.keywords]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ReslabError(f"model {name!r}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    if pretrained is not None and not isinstance(pretrained, (bool, str)):
        raise ReslabError(f"pretrained must be True/False or a source name, got {pretrained!r}")
    if pretrained and checkpoint_path is not None:
        raise ReslabError("give pretrained= or checkpoint_path=, not both")
    if pretrained:
        return _with_pretrained(name, builder, pretrained if isinstance(pretrained, str) else tag, kwargs)
    model = builder(**kwargs)
    if checkpoint_path is not None:
        from reslab.weights.load import load_state_file

        try:
            model.load_state_dict(load_state_file(checkpoint_path))
        except RuntimeError as err:
            raise ReslabError(f"{checkpoint_path}: the weights do not fit {name} "
                              f"({' '.join(str(err).split())[:200]})") from None
    return model


def _with_pretrained(name: str, builder, source: str | None, kwargs: dict) -> nn.Module:
    from reslab.weights.convert import convert_state, torch_load_safe, unwrap_source
    from reslab.weights.download import fetch_pinned
    from reslab.weights.sources import get_pinned, sources_for

    if source is None:
        have = sources_for(name)
        if not have:
            raise ReslabError(f"no published weights for {name!r}; `reslab weights list` shows the models that have them")
        source = have[0]
    src, _ = get_pinned(source, name)
    fixed = {"num_classes": src.num_classes, "in_channels": 3, "width": 1.0, "shortcut": src.shortcut}
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ReslabError(f"pretrained={src.name!r} weights have {key}={value!r}; got {key}={kwargs[key]!r} "
                              f"(build without pretrained= to change it)")
    model = builder(**{**kwargs, "num_classes": src.num_classes, "shortcut": src.shortcut})
    path = fetch_pinned(src.name, name, log=lambda msg: print(f"reslab: {msg}", file=sys.stderr))
    model.load_state_dict(convert_state(src, unwrap_source(src.format, torch_load_safe(path), path), model, path))
    return model
