"""He et al.'s constructed solution: a deeper plain net that computes what a shallower one does.

He et al. 2016 §1: "There exists a solution by construction to the deeper model: the added
layers are identity mapping, and the other layers are copied from the learned shallower
model."  :func:`deepen_plain` builds it for the CIFAR plain nets: every stage keeps the
shallower net's blocks and gains blocks whose layers are identities:

* each 3×3 convolution is a Dirac kernel (the centre tap 1 on its own channel, 0 elsewhere);
* each BatchNorm passes its input through: running mean 0, running variance 1, scale
  ``sqrt(1 + eps)``, shift 0, so ``(x - 0) / sqrt(1 + eps) * sqrt(1 + eps) = x``;
* each ReLU acts on non-negative inputs (a plain block's input is the previous ReLU's
  output), so it passes them through too.

With BatchNorm in eval mode (its running statistics) the deeper net computes the shallower
net's function up to float rounding; in train mode BatchNorm would use the batch's
statistics instead, so the construction is a statement about the function, as He et al.'s is.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.models.blocks import Block, CReLU, basic_block
from reslab.models.resnet import ResNet, is_cifar_depth


def _identity_block(channels: int) -> Block:
    block = basic_block(channels, channels, 1, residual=False, shortcut="A")
    with torch.no_grad():
        for conv in (block.branch.conv1, block.branch.conv2):
            nn.init.dirac_(conv.weight)
        for bn in (block.branch.bn1, block.branch.bn2):
            bn.running_mean.zero_(), bn.running_var.fill_(1.0)
            bn.weight.fill_(math.sqrt(1.0 + bn.eps)), bn.bias.zero_()
    return block


def deepen_plain(model: ResNet, depth: int) -> ResNet:
    """A plain CIFAR net of ``depth`` layers (6n+2) computing ``model``'s function in eval
    mode: ``model``'s layers, then identity blocks at the end of each stage."""
    if not isinstance(model, ResNet) or model.residual or len(model.stage_names) != 3:
        raise ReslabError("deepen_plain needs a plain CIFAR net (cifar_resnet(..., residual=False))")
    if any(isinstance(m, CReLU) for m in model.modules()):
        raise ReslabError("deepen_plain: a looks-linear (CReLU) net has no identity block of this form")
    have = len(model.stage1)
    if not is_cifar_depth(depth) or (depth - 2) // 6 < have:
        raise ReslabError(f"deepen_plain: depth must be 6n+2 and at least the net's own {6 * have + 2}, got {depth}")
    deeper = copy.deepcopy(model)
    ref = next(model.parameters())
    for name in deeper.stage_names:
        stage = getattr(deeper, name)
        channels = stage[-1].branch.conv2.out_channels
        for _ in range((depth - 2) // 6 - have):
            stage.append(_identity_block(channels).to(device=ref.device, dtype=ref.dtype))
    return deeper.eval() if not model.training else deeper
