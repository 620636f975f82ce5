"""One registry: a model name to its constructor.

Names: ``resnet20/32/44/56/110/1202`` and ``plain…`` twins (CIFAR, He et al. §4.2),
``resnet18/34/50/101/152`` and ``plain…`` twins (ImageNet, Table 1), and ``mlp``
(the scalar nets of Balduzzi et al. 2017).  Any other 6n+2 depth is reachable as
``cifar-resnetN`` / ``cifar-plainN`` (``resnet50`` and ``resnet152`` mean the ImageNet nets).
"""

from __future__ import annotations

import inspect
import re
from functools import partial
from typing import Callable

from torch import nn

from reslab.errors import ReslabError
from reslab.models.resnet import CIFAR_PAPER_DEPTHS, IMAGENET_LAYOUTS, cifar_resnet, imagenet_resnet


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
        if depth < 8 or (depth - 2) % 6:
            raise ReslabError(f"model {name!r}: CIFAR ResNet depth must be 6n+2 with n >= 1 (e.g. 8, 14, 20, 56), got {depth}")
        return partial(cifar_resnet, depth, residual=m.group(1) == "resnet")
    m = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if m:
        raise ReslabError(
            f"model {name!r}: depth {m.group(2)} is not a paper depth; CIFAR depths are 6n+2 "
            f"({', '.join(map(str, CIFAR_PAPER_DEPTHS))}, or any 6n+2 as cifar-{m.group(1)}N), "
            f"ImageNet depths are {', '.join(map(str, IMAGENET_LAYOUTS))}")
    raise ReslabError(f"unknown model {name!r}; valid: {', '.join(MODELS)}, or cifar-resnetN / cifar-plainN for N = 6n+2")


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name; keyword arguments go to its constructor.

    >>> create_model("resnet20", num_classes=10, in_channels=1).stage_names
    ['stage1', 'stage2', 'stage3']
    """
    builder = _lookup(name)
    target = builder.func if isinstance(builder, partial) else None
    if target is not None:
        allowed = [p for p in inspect.signature(target).parameters if p not in ("depth",) and p not in builder.keywords]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ReslabError(f"model {name!r}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    return builder(**kwargs)
