"""Fully connected nets, plain and residual: the scalar nets of Balduzzi et al. 2017
(arXiv 1702.08591), also usable on flattened images.

``depth`` counts hidden layers, i.e. nonlinearities.  Both kinds are one code path::

    stem   Linear(in_features, width)
    blocks (depth - 1) x  [x +] beta * branch(x),   branch = [BN] → act → Linear(width, width)
    head   [BN] → act → Linear(width, out_features)

A plain net (``residual=False``) computes ``branch(x)`` in each block, which is exactly the
textbook ``(Linear → [BN] → act) x depth → Linear``.  A ResNet adds the skip around each
block's pre-activation branch (He et al. 2016b, arXiv 1603.05027, as Balduzzi et al. use)
and scales the branch by ``beta`` (Balduzzi §5, "β-rescaling").  The two differ *only* by
the skips: same layers, same parameter count, same weights for the same seed
(:meth:`MLP.set_skips` switches a built net between the two).

Counts (pinned in tests/test_mlp.py): ``depth + 1`` Linear layers, ``depth`` activations,
``depth`` BatchNorms (with BN), ``depth - 1`` skips (residual).  So the paper's
"1-layer net" is ``mlp(1)`` (one hidden layer of 200 units, no skips), its "24-layer
feedforward net" is ``mlp(24)`` and its "50-layer ResNet" is ``mlp(50, residual=True)``
(50 nonlinear layers, 49 residual blocks).

Initialisation: every Linear weight is He et al. 2015 Eq. 10, N(0, 2/fan_in) (Kaiming
normal, fan_in, ReLU gain), whatever the activation.  Biases (``bias=True``) keep PyTorch's
uniform(±1/sqrt(fan_in)) draw, so a net without BN is *not* positively homogeneous;
``bias=False`` gives the zero-bias, homogeneous case (see DESIGN.md's traps).  BN starts
at weight 1, bias 0.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import torch
from torch import nn

from reslab.errors import ReslabError

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class HeLinear(nn.Linear):
    """``nn.Linear`` initialised once: He et al. 2015 Eq. 10 weights, N(0, 2/fan_in), and
    PyTorch's default uniform(±1/sqrt(fan_in)) biases."""

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        if self.bias is not None:
            bound = self.in_features ** -0.5
            nn.init.uniform_(self.bias, -bound, bound)


def _unit(width: int, out: int, batchnorm: bool, activation: str, bias: bool) -> nn.Sequential:
    """[BN] → act → Linear(width, out): one pre-activation unit (a branch, or the head)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if batchnorm:
        layers["bn"] = nn.BatchNorm1d(width)
    layers["act"] = ACTIVATIONS[activation]()
    layers["fc"] = HeLinear(width, out, bias=bias)
    return nn.Sequential(layers)


class MLPBlock(nn.Module):
    """``x + beta * branch(x)`` (residual) or ``branch(x)`` (plain)."""

    def __init__(self, branch: nn.Module, residual: bool, beta: float):
        super().__init__()
        self.branch = branch
        self.residual = residual
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.residual:
            return x + self.beta * out
        return out

    def extra_repr(self) -> str:
        return f"residual={self.residual}, beta={self.beta}" if self.residual else "residual=False"


class MLP(nn.Module):
    """``stem → blocks → head``; input ``(N, in_features)`` (``(N,)`` or ``(N, C, H, W)``
    are flattened to that), output ``(N, out_features)``."""

    def __init__(self, depth: int, width: int, residual: bool, batchnorm: bool, beta: float,
                 activation: str, bias: bool, in_features: int, out_features: int):
        super().__init__()
        self.depth, self.width, self.residual, self.beta = depth, width, residual, beta
        self.stem = HeLinear(in_features, width, bias=bias)
        self.blocks = nn.Sequential(*[
            MLPBlock(_unit(width, width, batchnorm, activation, bias), residual, beta)
            for _ in range(depth - 1)
        ])
        self.head = _unit(width, out_features, batchnorm, activation, bias)

    def set_skips(self, residual: bool, beta: float = 1.0) -> "MLP":
        """Switch the skips on or off in place, keeping every weight: the plain net and the
        ResNet of one seed differ only by this switch (and β)."""
        if not math.isfinite(beta) or beta <= 0 or (not residual and beta != 1.0):
            raise ReslabError(f"mlp: need beta > 0, and beta = 1 without skips; got residual={residual}, beta={beta}")
        self.residual, self.beta = bool(residual), float(beta)
        for block in self.blocks:
            block.residual, block.beta = self.residual, self.beta
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x.reshape(x.shape[0], -1))))


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ReslabError(f"mlp: {name} must be an integer >= {minimum}, got {value!r}")


def mlp(depth: int, width: int = 200, residual: bool = False, batchnorm: bool = True, beta: float = 1.0,
        activation: str = "relu", bias: bool = True, in_features: int = 1, out_features: int = 1) -> MLP:
    """A fully connected net with ``depth`` hidden layers of ``width`` units (see module docstring).

    >>> mlp(24).depth, sum(isinstance(m, nn.Linear) for m in mlp(24).modules())
    (24, 25)
    """
    _check_int("depth", depth, 1)
    _check_int("width", width, 1)
    _check_int("in_features", in_features, 1)
    _check_int("out_features", out_features, 1)
    if activation not in ACTIVATIONS:
        raise ReslabError(f"mlp: unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta) or beta <= 0:
        raise ReslabError(f"mlp: beta must be a finite number > 0, got {beta!r}")
    if not residual and beta != 1.0:
        raise ReslabError(f"mlp: beta scales the residual branch; it needs residual=True (got beta={beta})")
    return MLP(int(depth), int(width), bool(residual), bool(batchnorm), float(beta), activation, bool(bias),
               int(in_features), int(out_features))
