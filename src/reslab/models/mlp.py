"""Fully connected nets, plain and residual: the scalar nets of Balduzzi et al. 2017
(arXiv 1702.08591), also usable on flattened images.

``depth`` counts hidden layers, i.e. nonlinearities.  Hidden layer k computes
``a_k = act(BN(W_k a_{k-1}))`` in a plain net; a ResNet adds a skip around every hidden
layer but the first (whose input is the scalar x, of another width), scaled by ``beta``
(Balduzzi et al. §5, "β-rescaling").  Where the skip sits is the ``block`` option, named
by what the residual branch computes:

``block="postact"`` (default)
    ``a_k = a_{k-1} + beta * act(BN(W_k a_{k-1}))``: the branch is Linear → [BN] → act.
    Module tree: ``stem`` Linear(in, width), ``stem_act`` [BN] → act, ``blocks`` (depth - 1)
    x ``[a +] beta * branch(a)`` with branch = Linear → [BN] → act, ``head`` Linear(width, out).
``block="preact"``
    ``z_k = z_{k-1} + beta * W_k act(BN(z_{k-1}))``: the branch is [BN] → act → Linear, the
    pre-activation unit of He et al. 2016b (arXiv 1603.05027).  Module tree: ``stem``
    Linear(in, width), ``blocks`` (depth - 1) x ``[z +] beta * branch(z)`` with branch =
    [BN] → act → Linear, ``head`` [BN] → act → Linear(width, out).

What the paper says, and what was not verified: Balduzzi et al. describe their Fig. 1
nets as a 1-layer and a 24-layer feedforward net and a 50-layer ResNet, and Fig. 1(c)
shows the ResNet's df/dx looking like brown noise (Fig. 1(d)).  The exact order of
Linear, BN, ReLU and β inside their residual block could not be read from a copy of the
paper's text available to this project, so neither layout is claimed to be theirs.  The
default, ``postact``, is the one that reproduces Fig. 1(c) under this repository's
conventions (BN statistics over the 256-point grid, held fixed for df/dx): its 50-layer
β = 1 ResNet has a lag-1 autocorrelation of df/dx near brown noise's, while ``preact``
stays well below (both are measured and reported by ``reslab shattered``).

For a *plain* net (``residual=False``) the two layouts compute the same function,
``(Linear → [BN] → act) x depth → Linear``, with the same weights for the same seed: the
Linear layers are created in the same order and carry the same names (``stem``,
``blocks.i.branch.fc``, ``head.fc``) in both trees.  A ResNet differs from the plain net
of its seed *only* by the skips (:meth:`MLP.set_skips` switches a built net between the two).

Counts (pinned in tests/test_mlp.py), either layout: ``depth + 1`` Linear layers,
``depth`` activations, ``depth`` BatchNorms (with BN), ``depth - 1`` skips (residual).  So
the paper's "1-layer net" is ``mlp(1)`` (one hidden layer of 200 units, no skips), its
"24-layer feedforward net" is ``mlp(24)`` and its "50-layer ResNet" is
``mlp(50, residual=True)`` (50 nonlinear layers, 49 residual blocks).

Initialisation: every Linear weight is He et al. 2015 Eq. 10, N(0, 2/fan_in) (Kaiming
normal, fan_in, ReLU gain), whatever the activation.  Biases (``bias=True``) keep PyTorch's
uniform(±1/sqrt(fan_in)) draw, so a net without BN is *not* positively homogeneous;
``bias=False`` gives the zero-bias case, where a ReLU net without BN is positively
homogeneous and, on a scalar input, has a piecewise-constant df/dx with very few pieces.
BN starts at weight 1, bias 0.

Looks-linear initialisation (Balduzzi et al. 2017, §5): ``init="looks-linear"`` makes the
activation a CReLU, ``[relu(z), relu(-z)]`` (twice the units after every activation, so
every Linear fed by one has fan-in ``2 * width``), and initialises each such Linear as
``[W0, -W0]`` with ``W0`` orthogonal, the stem orthogonal, biases zero
(:func:`reslab.models.init.init_looks_linear`).  Each CReLU-and-Linear pair then computes
``W0 z``: the whole net is linear in its input at init (affine for fixed BN statistics),
and its df/dx is constant, i.e. not shattered, at any depth.  ``activation="crelu"``
alone gives the CReLU net with the default He init.  The default (``init="he"``) is
unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.models.blocks import CReLU

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "crelu": CReLU}
INITS = ("he", "looks-linear")


def _expansion(activation: str) -> int:
    return getattr(ACTIVATIONS[activation], "expansion", 1)


class HeLinear(nn.Linear):
    """``nn.Linear`` initialised once: He et al. 2015 Eq. 10 weights, N(0, 2/fan_in), and
    PyTorch's default uniform(±1/sqrt(fan_in)) biases."""

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        if self.bias is not None:
            bound = self.in_features ** -0.5
            nn.init.uniform_(self.bias, -bound, bound)


BLOCKS = ("postact", "preact")


def _unit(width: int, out: int, batchnorm: bool, activation: str, bias: bool, layout: str) -> nn.Sequential:
    """One hidden layer as a module: ``preact``: [BN] → act → Linear(width, out);
    ``postact``: Linear(width, out) → [BN] → act.  Children are named bn, act, fc."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    k = _expansion(activation)  # a CReLU doubles the features: the Linear after it has fan-in k * width
    if layout == "postact":
        layers["fc"] = _fed_by(HeLinear(width * k, out, bias=bias), k)
    if batchnorm:
        layers["bn"] = nn.BatchNorm1d(out if layout == "postact" else width)
    layers["act"] = ACTIVATIONS[activation]()
    if layout == "preact":
        layers["fc"] = _fed_by(HeLinear(width * k, out, bias=bias), k)
    return nn.Sequential(layers)


def _fed_by(linear: nn.Linear, expansion: int) -> nn.Linear:
    """Mark a Linear fed by a CReLU: looks-linear init mirrors its weights."""
    if expansion == 2:
        linear.looks_linear_mirror = True
    return linear


def _norm_act(width: int, batchnorm: bool, activation: str) -> nn.Sequential:
    """[BN] → act: the first hidden layer's nonlinearity in the ``postact`` layout."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if batchnorm:
        layers["bn"] = nn.BatchNorm1d(width)
    layers["act"] = ACTIVATIONS[activation]()
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
                 activation: str, bias: bool, in_features: int, out_features: int, block: str = "postact",
                 init: str = "he"):
        super().__init__()
        self.depth, self.width, self.residual, self.beta, self.block = depth, width, residual, beta, block
        self.init = init
        k = _expansion(activation)
        # Linear layers are created in forward order in both layouts (same weights per seed).
        self.stem = HeLinear(in_features, width, bias=bias)
        if block == "postact":
            self.stem_act = _norm_act(width, batchnorm, activation)
        self.blocks = nn.Sequential(*[
            MLPBlock(_unit(width, width, batchnorm, activation, bias, block), residual, beta)
            for _ in range(depth - 1)
        ])
        if block == "postact":
            self.head = nn.Sequential(OrderedDict(fc=_fed_by(HeLinear(width * k, out_features, bias=bias), k)))
        else:
            self.head = _unit(width, out_features, batchnorm, activation, bias, block)
        if init == "looks-linear":
            from reslab.models.init import init_looks_linear

            init_looks_linear(self)

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
        z = self.stem(x.reshape(x.shape[0], -1))
        if self.block == "postact":
            z = self.stem_act(z)
        return self.head(self.blocks(z))


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ReslabError(f"mlp: {name} must be an integer >= {minimum}, got {value!r}")


def mlp(depth: int, width: int = 200, residual: bool = False, batchnorm: bool = True, beta: float = 1.0,
        activation: str = "relu", bias: bool = True, in_features: int = 1, out_features: int = 1,
        block: str = "postact", init: str = "he") -> MLP:
    """A fully connected net with ``depth`` hidden layers of ``width`` units (see module docstring).
    ``init="looks-linear"`` switches the activation to CReLU and initialises the net to
    compute a linear function (module docstring); ``activation`` must then be relu or crelu.

    >>> mlp(24).depth, sum(isinstance(m, nn.Linear) for m in mlp(24).modules())
    (24, 25)
    """
    _check_int("depth", depth, 1)
    _check_int("width", width, 1)
    _check_int("in_features", in_features, 1)
    _check_int("out_features", out_features, 1)
    if block not in BLOCKS:
        raise ReslabError(f"mlp: unknown block {block!r}; valid: {', '.join(BLOCKS)}")
    if activation not in ACTIVATIONS:
        raise ReslabError(f"mlp: unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if init not in INITS:
        raise ReslabError(f"mlp: unknown init {init!r}; valid: {', '.join(INITS)}")
    if init == "looks-linear":
        if activation not in ("relu", "crelu"):
            raise ReslabError(f"mlp: looks-linear init needs a ReLU net (it becomes a CReLU net), got {activation!r}")
        activation = "crelu"
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(beta) or beta <= 0:
        raise ReslabError(f"mlp: beta must be a finite number > 0, got {beta!r}")
    if not residual and beta != 1.0:
        raise ReslabError(f"mlp: beta scales the residual branch; it needs residual=True (got beta={beta})")
    return MLP(int(depth), int(width), bool(residual), bool(batchnorm), float(beta), activation, bool(bias),
               int(in_features), int(out_features), block, init)
