"""ResNets and their plain twins: CIFAR-style ResNet-(6n+2) and ImageNet-style ResNet-18..152.

Every net is ``stem → stage1 … stageK → head``.  A plain twin is the same net built with
``residual=False``: the same branches, no shortcuts.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.models.blocks import SHORTCUTS, Block, CReLU, basic_block, bottleneck_block, mirror
from reslab.models.init import check_scheme, init_weights

CIFAR_PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)
# ImageNet layouts (He et al. Table 1): block type and blocks per stage.
IMAGENET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class Head(nn.Sequential):
    """Global average pooling, then a fully connected layer."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     fc=nn.Linear(in_features, num_classes)))


class ResNet(nn.Module):
    """``stem → stage1 … stageK → head``; the stages hold :class:`~reslab.models.blocks.Block`s."""

    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], head: nn.Module, *,
                 residual: bool, init: str, zero_init_residual: bool):
        super().__init__()
        self.residual = residual
        self.stem = stem
        self.stage_names = [f"stage{i}" for i in range(1, len(stages) + 1)]
        for name, stage in zip(self.stage_names, stages):
            self.add_module(name, stage)
        self.head = head
        init_weights(self, init)
        if zero_init_residual:
            # Goyal et al. 2017: each block starts as the identity, since its branch's last BN is 0.
            for m in self.modules():
                if isinstance(m, Block):
                    nn.init.zeros_(m.last_bn.weight)

    def stages(self) -> list[tuple[str, nn.Module]]:
        """``[("stem", …), ("stage1", …), …, ("head", …)]`` in forward order."""
        return [("stem", self.stem)] + [(n, getattr(self, n)) for n in self.stage_names] + [("head", self.head)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, module in self.stages():
            x = module(x)
        return x


def _check_common(num_classes: int, in_channels: int, width: float, shortcut: str, residual: bool,
                  zero_init_residual: bool, init: str) -> None:
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ReslabError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (isinstance(in_channels, int) and in_channels >= 1):
        raise ReslabError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not (isinstance(width, (int, float)) and width > 0):
        raise ReslabError(f"width must be a positive number (a multiplier of the paper's widths), got {width!r}")
    if shortcut not in SHORTCUTS:
        raise ReslabError(f"unknown shortcut {shortcut!r}; valid: A (zero-pad), B (project where the shape changes), C (project everywhere)")
    if zero_init_residual and not residual:
        raise ReslabError("zero_init_residual=True needs a residual net: in a plain net it zeroes every block's output")
    check_scheme(init)


def _widths(base: tuple[int, ...], width: float) -> list[int]:
    return [max(1, int(round(w * width))) for w in base]


def is_cifar_depth(depth) -> bool:
    """A CIFAR ResNet depth, 6n+2 with n >= 1 (8, 14, 20, ...): the one check of it."""
    return isinstance(depth, int) and not isinstance(depth, bool) and depth >= 8 and (depth - 2) % 6 == 0


def cifar_resnet(depth: int, *, residual: bool = True, shortcut: str = "A", num_classes: int = 10,
                 in_channels: int = 3, width: float = 1.0, zero_init_residual: bool = False,
                 init: str = "he_normal") -> ResNet:
    """He et al. §4.2: a 3×3 stem with 16 filters, then three stages of n = (depth-2)/6 basic
    blocks with 16/32/64 filters on 32/16/8 maps, then global average pooling and a fully
    connected layer.  The first block of stages 2 and 3 strides by 2.  6n+2 weighted layers.

    ``init="looks-linear"`` (plain nets only; Balduzzi et al. 2017 §5): every ReLU becomes a
    CReLU, so every conv after the stem and the head read twice the channels, and their
    weights are mirrored, ``[W0, -W0]``: the net computes a linear function at init (affine
    for fixed BN statistics).  It has about twice the parameters of the He-initialised twin.
    """
    if not is_cifar_depth(depth):
        raise ReslabError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202, ...), got {depth!r}")
    _check_common(num_classes, in_channels, width, shortcut, residual, zero_init_residual, init)
    crelu = init == "looks-linear"
    if crelu and residual:
        raise ReslabError("init 'looks-linear' is for plain nets (its CReLU + mirrored weights replace the skips); "
                          "use a plain model such as plain56")
    n = (depth - 2) // 6
    w = _widths((16, 32, 64), width)
    stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_channels, w[0], 3, padding=1, bias=False),
                                     bn=nn.BatchNorm2d(w[0]), relu=CReLU() if crelu else nn.ReLU(inplace=True)))
    stages, in_ch = [], w[0]
    for i, out_ch in enumerate(w):
        blocks = []
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1  # §4.2: subsampling by stride-2 convs
            blocks.append(basic_block(in_ch, out_ch, stride, residual, shortcut, crelu=crelu))
            in_ch = out_ch
        stages.append(nn.Sequential(*blocks))
    head = Head(2 * in_ch if crelu else in_ch, num_classes)
    if crelu:
        mirror(head.fc)
    return ResNet(stem, stages, head, residual=residual, init=init, zero_init_residual=zero_init_residual)


def imagenet_resnet(depth: int, *, residual: bool = True, shortcut: str = "B", num_classes: int = 1000,
                    in_channels: int = 3, width: float = 1.0, zero_init_residual: bool = False,
                    init: str = "he_normal") -> ResNet:
    """He et al. Table 1: a 7×7/2 conv + BN + ReLU + 3×3/2 max-pool stem, four stages of
    64/128/256/512 base widths (×4 outputs for bottlenecks), stride 2 at the start of
    stages 2–4, then global average pooling and a fully connected layer.  Option B shortcuts
    by default, as in the reference implementation.
    """
    if depth not in IMAGENET_LAYOUTS:
        raise ReslabError(f"ImageNet ResNet depth must be one of {sorted(IMAGENET_LAYOUTS)}, got {depth!r}")
    _check_common(num_classes, in_channels, width, shortcut, residual, zero_init_residual, init)
    kind, counts = IMAGENET_LAYOUTS[depth]
    make, expansion = (basic_block, 1) if kind == "basic" else (bottleneck_block, 4)
    w = _widths((64, 128, 256, 512), width)
    stem = nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, w[0], 7, stride=2, padding=3, bias=False), bn=nn.BatchNorm2d(w[0]),
        relu=nn.ReLU(inplace=True), pool=nn.MaxPool2d(3, stride=2, padding=1)))
    stages, in_ch = [], w[0]
    for i, (mid, count) in enumerate(zip(w, counts)):
        blocks = []
        for j in range(count):
            stride = 2 if (i > 0 and j == 0) else 1
            blocks.append(make(in_ch, mid, stride, residual, shortcut))
            in_ch = mid * expansion
        stages.append(nn.Sequential(*blocks))
    return ResNet(stem, stages, Head(in_ch, num_classes), residual=residual, init=init,
                  zero_init_residual=zero_init_residual)


def weighted_layers(model: nn.Module) -> int:
    """Convolutions and fully connected layers, not counting shortcut projections (the
    paper's depth: ResNet-20 has 20, ResNet-50 has 50)."""
    skip = {id(m) for blk in model.modules() if isinstance(blk, Block) and blk.shortcut is not None
            for m in blk.shortcut.modules()}
    return sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in skip)
