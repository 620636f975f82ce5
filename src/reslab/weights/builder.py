"""``reslab.create_model``: a registered model, with weights when asked (timm's convention).

The models package builds untrained nets; this module adds ``pretrained=`` (published
weights, checked against their pinned hash) and ``checkpoint_path=`` (a reslab checkpoint,
a safetensors file or a bare state dict) on top, so that the models import nothing above them.
"""

from __future__ import annotations

import fnmatch
import logging

from torch import nn

from reslab.errors import ReslabError
from reslab.models.registry import spec
from reslab.models.spec import ModelSpec

log = logging.getLogger("reslab")
HEAD = "head.fc."  # the classifier of every registered ResNet, replaced when num_classes differs


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
    s = spec(name)
    s.check_options(kwargs)
    if pretrained is not None and not isinstance(pretrained, (bool, str)):
        raise ReslabError(f"pretrained must be True/False or a source name, got {pretrained!r}")
    if pretrained and checkpoint_path is not None:
        raise ReslabError("give pretrained= or checkpoint_path=, not both")
    if pretrained:
        return _with_pretrained(s, pretrained if isinstance(pretrained, str) else tag, kwargs)
    model = s.build(**kwargs)
    if checkpoint_path is not None:
        from reslab.weights.check import check_tensors, header_of
        from reslab.weights.files import load_state_file

        state = load_state_file(checkpoint_path)
        check_tensors(header_of(state), model, checkpoint_path, name)  # names, shapes, floating-point dtypes
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ReslabError(f"{checkpoint_path}: the weights do not fit {name} "
                              f"({' '.join(str(err).split())[:200]})") from None
    return model


def _with_pretrained(s: ModelSpec, source: str | None, kwargs: dict) -> nn.Module:
    from reslab.weights.load import pretrained
    from reslab.weights.sources import get_pinned, sources_for

    if source is None:
        have = sources_for(s.name)
        if not have:
            raise ReslabError(f"no published weights for {s.name!r}; `reslab weights list` shows the models that have them")
        source = have[0]
    src, _ = get_pinned(source, s.name)
    fixed = {"in_channels": 3, "width": 1.0, "shortcut": src.shortcut}
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ReslabError(f"pretrained={src.name!r} weights have {key}={value!r}; got {key}={kwargs[key]!r} "
                              f"(build without pretrained= to change it)")
    num_classes = kwargs.get("num_classes", src.num_classes)
    model = s.build(**{**kwargs, "num_classes": num_classes, "shortcut": src.shortcut})
    state = pretrained(src.name, s.name, log=log.info).model.state_dict()
    if num_classes != src.num_classes:  # timm's convention: a fresh classifier, the rest pretrained
        state = {k: v for k, v in state.items() if not k.startswith(HEAD)}
        log.warning("reslab: %s:%s has %d classes; num_classes=%d gets a new, freshly initialised head (%s*)",
                    src.name, s.name, src.num_classes, num_classes, HEAD)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(HEAD) for k in missing):
        raise ReslabError(f"{src.name}:{s.name}: the cached weights do not fit {s.name} "
                          f"(e.g. {(unexpected or missing)[0]}); delete them and import again")
    return model


def list_models(filter: str = "", pretrained: bool = False) -> list[str]:
    """Registered model names, as in timm: ``filter`` is an fnmatch pattern (``"resnet*"``,
    ``"*56"``); ``pretrained=True`` keeps the names that have published weights (``reslab
    weights list``).  Any other CIFAR depth 6n+2 is built as ``cifar-resnetN`` / ``cifar-plainN``
    (e.g. ``create_model("cifar-resnet8")``); those names are not listed.

    >>> list_models("resnet*", pretrained=True)
    ['resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110', 'resnet1202']
    """
    from reslab.models.registry import list_models as registered
    from reslab.weights.sources import sources_for

    names = [n for n in registered() if not filter or fnmatch.fnmatchcase(n, filter)]
    return [n for n in names if sources_for(n)] if pretrained else names
