"""Residual blocks and their shortcuts (He et al. 2016, arXiv 1512.03385).

A block computes ``relu(branch(x) + shortcut(x))``; its plain twin computes
``relu(branch(x))`` from the same code path with ``residual=False``.  The branch is
built once either way, so a plain net has exactly the residual net's weighted layers.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("A", "B", "C")


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """§4.2 option A: subsample by the stride, then zero-pad the new channels.

    No parameters.  A named module rather than a lambda so whole models pickle.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"option A cannot shrink channels ({in_ch} -> {out_ch})")
        self.in_ch = in_ch
        self.extra = out_ch - in_ch
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # = x[:, :, ::s, ::s], but its backward keeps channels_last (the slice's does not,
            # which costs ~3% of a ResNet-20 step on CPU).
            x = F.avg_pool2d(x, 1, self.stride)
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (W, H, C) pads: new channels at the end
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


class CReLU(nn.Module):
    """Concatenated ReLU, ``[relu(z), relu(-z)]`` along channels/features (Shang et al. 2016):
    twice the channels out.  With a following layer whose weights are mirrored, ``[W0, -W0]``,
    the pair computes ``W0 z`` (Balduzzi et al. 2017 §5, looks-linear initialisation).  The
    ReLU is an ``nn.ReLU`` child, so activity probes see it."""

    expansion = 2

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.relu(torch.cat([z, -z], 1))


def mirror(layer: nn.Module) -> nn.Module:
    """Mark ``layer`` as fed by a CReLU: looks-linear init gives it mirrored weights."""
    layer.looks_linear_mirror = True
    return layer


class Projection(nn.Sequential):
    """Options B/C: a 1×1 convolution with the block's stride, then BN (Eq. 2, W_s x)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__(OrderedDict(conv=conv1x1(in_ch, out_ch, stride), bn=nn.BatchNorm2d(out_ch)))


def make_shortcut(option: str, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """A: identity, or zero-pad where the shape changes.  B: identity, or projection where
    the shape changes.  C: projection everywhere."""
    same = stride == 1 and in_ch == out_ch
    if option == "C":
        return Projection(in_ch, out_ch, stride)
    if same:
        return nn.Identity()
    if option == "A":
        return ZeroPadShortcut(in_ch, out_ch, stride)
    return Projection(in_ch, out_ch, stride)


class Block(nn.Module):
    """``out = relu(branch(x) + shortcut(x))``, or ``relu(branch(x))`` for a plain block.

    The addition comes before the block's final ReLU (He et al. Fig. 2).
    """

    expansion = 1

    def __init__(self, branch: nn.Module, shortcut: nn.Module | None, act: nn.Module | None = None):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut  # None: the plain twin
        self.relu = act if act is not None else nn.ReLU(inplace=True)

    @property
    def residual(self) -> bool:
        return self.shortcut is not None

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.branch[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


def basic_block(in_ch: int, out_ch: int, stride: int, residual: bool, shortcut: str, crelu: bool = False) -> Block:
    """conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut, → ReLU.  Stride in the first conv.

    ``crelu`` (plain blocks only, for looks-linear init): both ReLUs become CReLUs, so each conv
    reads twice the channels (its input comes from a CReLU) and is marked for mirrored weights.
    """
    if crelu and residual:
        raise ValueError("CReLU blocks are for plain (looks-linear) nets")
    k = 2 if crelu else 1
    branch = nn.Sequential(OrderedDict(
        conv1=conv3x3(k * in_ch, out_ch, stride), bn1=nn.BatchNorm2d(out_ch),
        relu1=CReLU() if crelu else nn.ReLU(inplace=True),
        conv2=conv3x3(k * out_ch, out_ch), bn2=nn.BatchNorm2d(out_ch),
    ))
    if crelu:
        mirror(branch.conv1), mirror(branch.conv2)
    return Block(branch, make_shortcut(shortcut, in_ch, out_ch, stride) if residual else None,
                 CReLU() if crelu else None)


def bottleneck_block(in_ch: int, mid_ch: int, stride: int, residual: bool, shortcut: str) -> Block:
    """conv1×1 → BN → ReLU → conv3×3 → BN → ReLU → conv1×1 (×4 channels) → BN, + shortcut, → ReLU.

    The stride sits in the 3×3 conv (the "v1.5" layout of the widely used reference
    implementation; the paper's v1 strides the first 1×1).
    """
    out_ch = mid_ch * 4
    branch = nn.Sequential(OrderedDict(
        conv1=conv1x1(in_ch, mid_ch), bn1=nn.BatchNorm2d(mid_ch), relu1=nn.ReLU(inplace=True),
        conv2=conv3x3(mid_ch, mid_ch, stride), bn2=nn.BatchNorm2d(mid_ch), relu2=nn.ReLU(inplace=True),
        conv3=conv1x1(mid_ch, out_ch), bn3=nn.BatchNorm2d(out_ch),
    ))
    return Block(branch, make_shortcut(shortcut, in_ch, out_ch, stride) if residual else None)
