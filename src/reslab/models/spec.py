"""What a registered model is, asked of its spec instead of read off its name.

Every name in the registry (and every ``cifar-resnetN`` / ``cifar-plainN``) resolves to one
:class:`ModelSpec`: its family, the input it expects, its depth, whether it has skips, its
plain twin, the options its constructor accepts, and whether a bank of many copies
(:mod:`reslab.models.bank`) can hold it.  Callers branch on these fields, never on the
spelling of the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from reslab.errors import ReslabError

FAMILIES = ("cifar", "imagenet", "mlp")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``depth`` is the paper's count of weighted layers; 0 where the depth is an option of the
    constructor (``mlp(depth=...)``).  ``residual`` is whether the net has skips as built
    by default; ``plain_twin`` names the same net without them (None for a plain net or a
    family whose skips are an option).  ``kwargs``: the options :meth:`build` accepts.
    ``bankable``: small enough, and built from parts, for :mod:`reslab.models.bank`.
    """

    name: str
    family: str
    input_shape: tuple[int, ...]
    depth: int
    residual: bool
    plain_twin: str | None
    kwargs: tuple[str, ...]
    bankable: bool
    constructor: Callable[..., nn.Module] = field(repr=False, compare=False)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"model {self.name!r}: family {self.family!r} is not one of {FAMILIES}")

    def check_options(self, options) -> None:
        """ReslabError naming the options :meth:`build` would not accept."""
        unknown = sorted(set(options) - set(self.kwargs))
        if unknown:
            raise ReslabError(f"model {self.name!r}: unknown option(s) {', '.join(map(str, unknown))}; "
                              f"valid: {', '.join(self.kwargs)}")

    def build(self, **kwargs) -> nn.Module:
        """The model with ``kwargs`` passed to its constructor (checked against ``kwargs``)."""
        self.check_options(kwargs)
        return self.constructor(**kwargs)
