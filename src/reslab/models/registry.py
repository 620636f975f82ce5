"""One registry: a model name to its :class:`~reslab.models.spec.ModelSpec`.

Names: ``resnet20/32/44/56/110/1202`` and ``plain…`` twins (CIFAR, He et al. §4.2),
``resnet18/34/50/101/152`` and ``plain…`` twins (ImageNet, Table 1), and ``mlp``
(the scalar nets of Balduzzi et al. 2017).  Any other 6n+2 depth is reachable as
``cifar-resnetN`` / ``cifar-plainN`` (``resnet50`` and ``resnet152`` mean the ImageNet nets).

This module builds untrained models only; weights (``pretrained=``, ``checkpoint_path=``)
are :func:`reslab.create_model`'s business (:mod:`reslab.weights.builder`), so that the
models import nothing above them.
"""

from __future__ import annotations

import inspect
import re
from functools import partial

from torch import nn

from reslab.errors import ReslabError
from reslab.models.mlp import mlp
from reslab.models.resnet import CIFAR_PAPER_DEPTHS, IMAGENET_LAYOUTS, cifar_resnet, imagenet_resnet, is_cifar_depth
from reslab.models.spec import ModelSpec

_CIFAR_NAME = re.compile(r"cifar-(resnet|plain)([0-9]+)\Z")  # \Z: "$" would accept a trailing newline


def _options(fn, bound=()) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(fn).parameters if p not in bound)


def _resnet(name: str, family: str, depth: int, residual: bool, twin: str | None) -> ModelSpec:
    fn, shape = (cifar_resnet, (3, 32, 32)) if family == "cifar" else (imagenet_resnet, (3, 224, 224))
    return ModelSpec(name=name, family=family, input_shape=shape, depth=depth, residual=residual,
                     plain_twin=twin if residual else None, kwargs=_options(fn, ("depth", "residual")),
                     bankable=family == "cifar", constructor=partial(fn, depth, residual=residual))


def _registry() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for kind, residual in (("resnet", True), ("plain", False)):
        for d in CIFAR_PAPER_DEPTHS:
            specs[f"{kind}{d}"] = _resnet(f"{kind}{d}", "cifar", d, residual, f"plain{d}")
        for d in IMAGENET_LAYOUTS:
            specs[f"{kind}{d}"] = _resnet(f"{kind}{d}", "imagenet", d, residual, f"plain{d}")
    # the mlp's depth and skips are options: mlp(depth, residual=...)
    specs["mlp"] = ModelSpec(name="mlp", family="mlp", input_shape=(1,), depth=0, residual=False, plain_twin=None,
                             kwargs=_options(mlp), bankable=True, constructor=mlp)
    return specs


MODELS: dict[str, ModelSpec] = _registry()


def list_models() -> list[str]:
    """The registered names (``cifar-resnetN`` / ``cifar-plainN`` reach any other 6n+2 depth)."""
    return list(MODELS)


def spec(name: str) -> ModelSpec:
    """The spec of a registered name or of ``cifar-resnetN`` / ``cifar-plainN`` (N = 6n+2);
    ReslabError (one line, listing what is valid) for anything else."""
    name = str(name)
    if name in MODELS:
        return MODELS[name]
    m = _CIFAR_NAME.match(name)
    if m:
        if len(m.group(2)) > 9:  # int() of thousands of digits raises; no such net could be built anyway
            raise ReslabError(f"model {name[:40]!r}...: deeper than the limit of 10**9 layers of any model")
        depth = int(m.group(2))
        if not is_cifar_depth(depth):
            raise ReslabError(f"model {name!r}: CIFAR ResNet depth must be 6n+2 with n >= 1 (e.g. 8, 14, 20, 56), got {depth}")
        return _resnet(name, "cifar", depth, m.group(1) == "resnet", f"cifar-plain{depth}")
    m = re.fullmatch(r"(resnet|plain)([0-9]{1,6})", name)
    if m:
        raise ReslabError(
            f"model {name!r}: depth {m.group(2)} is not a paper depth; CIFAR depths are 6n+2 "
            f"({', '.join(map(str, CIFAR_PAPER_DEPTHS))}, or any 6n+2 as cifar-{m.group(1)}N), "
            f"ImageNet depths are {', '.join(map(str, IMAGENET_LAYOUTS))}")
    raise ReslabError(f"unknown model {name[:60]!r}; valid: {', '.join(MODELS)}, "
                      f"or cifar-resnetN / cifar-plainN for N = 6n+2")


def model_family(name: str) -> str:
    """``"cifar"``, ``"imagenet"`` or ``"mlp"`` (``spec(name).family``)."""
    return spec(name).family


def create_model(name: str, **kwargs) -> nn.Module:
    """An untrained model by name; keyword arguments go to its constructor.

    Weights (``pretrained=``, ``checkpoint_path=``) are loaded by :func:`reslab.create_model`.

    >>> create_model("resnet20", num_classes=10, in_channels=1).stage_names
    ['stage1', 'stage2', 'stage3']
    """
    for key in ("pretrained", "checkpoint_path"):
        if key in kwargs:
            raise ReslabError(f"reslab.models.create_model builds untrained models; for {key}= "
                              f"use reslab.create_model({name!r}, {key}=...)")
    return spec(name).build(**kwargs)


def build_model(cfg, num_classes: int, in_channels: int) -> nn.Module:
    """The model a training config describes (anything with ``model``, ``width``,
    ``zero_init_residual``, ``init`` and ``shortcut``), for data of ``num_classes`` classes
    and ``in_channels`` channels.  Here, below training, so that checkpoints can build it."""
    s = spec(cfg.model)
    if s.family == "mlp":
        raise ReslabError(f"model {cfg.model!r} takes 1-D inputs; it is not an image classifier")
    options = dict(num_classes=num_classes, in_channels=in_channels, width=cfg.width,
                   zero_init_residual=cfg.zero_init_residual, init=cfg.init)
    if s.residual:  # a plain net has no shortcut to choose
        options["shortcut"] = cfg.shortcut
    return s.build(**options)
