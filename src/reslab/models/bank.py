"""A bank: K independent copies of one CIFAR net computed as one module.

Narrow nets on a CPU are bound by per-operator overhead, not arithmetic: ResNet-56 at
width 0.25 runs only a few times faster than at full width for 16x fewer FLOPs.  A bank
stacks K copies along the channel axis, so each operator runs once for all of them:

* a convolution becomes a grouped convolution (K x channels, ``groups=K``): group k sees
  only copy k's channels;
* a BatchNorm over K x C channels *is* K per-copy BatchNorms (statistics are per channel);
* option A's zero-padding shortcut becomes a fixed grouped 1x1 convolution whose weights
  are 1 on the kept channels and 0 on the new ones (exact: x * 1 + 0);
* a CReLU concatenates ``[z, -z]`` within each copy's channels;
* the head's fully connected layer becomes a batched matrix product, ``(B, K, classes)`` out.

The copies share nothing: no weight, no statistic, no gradient.  Optimizers that act
elementwise (SGD with momentum and weight decay) update each copy as they would alone, so
a bank trained on K data streams computes what K separate runs compute, up to float
reassociation.  :meth:`Bank.bind` builds a bank from K ordinary models (each initialised as
its own run would be); :meth:`Bank.unbind` gives them back.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.models.blocks import CReLU, ZeroPadShortcut

_PASS_THROUGH = (nn.ReLU, nn.Identity, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Sequential)


class GroupedLinear(nn.Module):
    """K fully connected layers: ``(B, K * in) -> (B, K, out)``."""

    def __init__(self, k: int, in_features: int, out_features: int):
        super().__init__()
        self.k, self.in_features, self.out_features = k, in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(k, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.k, self.in_features).transpose(0, 1)  # (K, B, in)
        return torch.baddbmm(self.bias[:, None, :], x, self.weight.transpose(1, 2)).transpose(0, 1)


class GroupedZeroPad(nn.Module):
    """Option A for K copies: subsample by the stride, zero-pad each copy's new channels."""

    def __init__(self, k: int, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.k, self.stride = k, stride
        eye = torch.zeros(out_ch, in_ch, 1, 1)
        eye[torch.arange(in_ch), torch.arange(in_ch)] = 1.0
        self.register_buffer("weight", eye.repeat(k, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), stride=self.stride, groups=self.k)


class GroupedCReLU(nn.Module):
    """CReLU within each copy: copy k's channels become ``[relu(z_k), relu(-z_k)]``."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.relu = nn.ReLU()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, c = z.shape[:2]
        z5 = z.reshape(b, self.k, c // self.k, *z.shape[2:])
        return self.relu(torch.cat([z5, -z5], 2).reshape(b, 2 * c, *z.shape[2:]))


def _grouped(mods: list[nn.Module]) -> nn.Module | None:
    """The grouped twin of one leaf module across the K copies (None: keep it as it is)."""
    k, m = len(mods), mods[0]
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.bias is not None:
            raise ReslabError("a bank needs ungrouped, bias-free convolutions (the CIFAR ResNets')")
        g = nn.Conv2d(k * m.in_channels, k * m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                      groups=k, bias=False)
        g.weight.data.copy_(torch.cat([c.weight.data for c in mods], 0))
        return g
    if isinstance(m, nn.BatchNorm2d):
        g = nn.BatchNorm2d(k * m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(g, name).data.copy_(torch.cat([getattr(c, name).data for c in mods], 0))
        g.num_batches_tracked.copy_(m.num_batches_tracked)
        return g
    if isinstance(m, nn.Linear):
        g = GroupedLinear(k, m.in_features, m.out_features)
        g.weight.data.copy_(torch.stack([c.weight.data for c in mods]))
        g.bias.data.copy_(torch.stack([c.bias.data for c in mods]))
        return g
    if isinstance(m, ZeroPadShortcut):
        return GroupedZeroPad(k, m.in_ch, m.in_ch + m.extra, m.stride)
    if isinstance(m, CReLU):
        return GroupedCReLU(k)
    if isinstance(m, _PASS_THROUGH):
        return None
    raise ReslabError(f"a bank cannot group a {type(m).__name__}; bankable: the CIFAR ResNets and plain nets")


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules a bank replaces or keeps: those with no children, and the few composite
    leaves (a CReLU, whose ReLU child it owns)."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, CReLU) or (not list(mod.children()) and not _inside_crelu(model, name)):
            out.append((name, mod))
    return out


def _inside_crelu(model: nn.Module, name: str) -> bool:
    parent = name.rpartition(".")[0]
    return bool(name) and isinstance(model.get_submodule(parent) if parent else model, CReLU)


class Bank(nn.Module):
    """K copies of one net as one module.  Input ``(B, K * C, H, W)`` (copy k's batch in
    channels ``k*C .. (k+1)*C``, see :meth:`stack`); output ``(B, K, classes)``."""

    def __init__(self, grouped: nn.Module, template: nn.Module, k: int):
        super().__init__()
        self.k = k
        self.net = grouped
        self._template = [template]  # a list: not a submodule, so not in state_dict()

    @classmethod
    def bind(cls, models: list[nn.Module]) -> "Bank":
        """A bank of ``models`` (same architecture, each initialised as its own run)."""
        if len(models) < 1:
            raise ReslabError("a bank needs at least one model")
        shapes = [[(n, p.shape) for n, p in m.state_dict().items()] for m in models]
        if any(s != shapes[0] for s in shapes):
            raise ReslabError("a bank's models must share one architecture")
        grouped = copy.deepcopy(models[0])
        for name, _ in _leaves(models[0]):
            new = _grouped([m.get_submodule(name) if name else m for m in models])
            if new is not None:
                grouped.set_submodule(name, new)
        bank = cls(grouped, copy.deepcopy(models[0]), len(models))
        bank.net.load_state_dict(bank.join_state([m.state_dict() for m in models]))
        return bank

    def _stacked(self, key: str) -> bool:
        """Whether ``key``'s tensor holds the copies along a new first axis (the head's
        grouped linear layer) rather than concatenated along the first axis."""
        owner = key.rpartition(".")[0]
        return isinstance(self.net.get_submodule(owner) if owner else self.net, GroupedLinear)

    def split_state(self, state: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """A state of the bank (its ``net``'s keys; weights, statistics or optimizer
        buffers) as K states of ordinary models."""
        out = [{} for _ in range(self.k)]
        for key, t in state.items():
            parts = ([t] * self.k if key.endswith("num_batches_tracked") else
                     t.unbind(0) if self._stacked(key) else t.chunk(self.k, 0))
            for d, x in zip(out, parts):
                d[key] = x.clone()
        return out

    def join_state(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """K states of ordinary models as one state of the bank (inverse of :meth:`split_state`)."""
        if len(states) != self.k:
            raise ReslabError(f"a bank of {self.k} needs {self.k} states, got {len(states)}")
        return {key: (t if key.endswith("num_batches_tracked") else
                      torch.stack([s[key] for s in states]) if self._stacked(key) else
                      torch.cat([s[key] for s in states], 0))
                for key, t in states[0].items()}

    def template(self) -> nn.Module:
        """A fresh copy of one member's architecture (weights as at bind time)."""
        return copy.deepcopy(self._template[0]).to(next(self.parameters()).device)

    def unbind(self) -> list[nn.Module]:
        """K ordinary models with this bank's weights and BatchNorm statistics."""
        out = []
        for sd in self.split_state(self.net.state_dict()):
            m = self.template()
            m.load_state_dict(sd)
            out.append(m)
        return out

    @staticmethod
    def stack(xs: list[torch.Tensor]) -> torch.Tensor:
        """K batches ``(B, C, H, W)`` as one bank input ``(B, K * C, H, W)``."""
        x = torch.cat(xs, 1)
        return x.contiguous(memory_format=torch.channels_last) if xs[0].is_contiguous(
            memory_format=torch.channels_last) and xs[0].dim() == 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def bank_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-copy mean cross-entropy and error of ``logits (B, K, classes)`` against ``y (B, K)``.
    The loss to backpropagate is their **sum**: each copy then gets exactly the gradient its
    own run would (a mean over copies would scale every gradient by 1/K)."""
    b, k, c = logits.shape
    per = F.cross_entropy(logits.float().reshape(b * k, c), y.reshape(b * k), reduction="none").view(b, k)
    losses = per.mean(0)
    errors = (logits.detach().argmax(2) != y).float().mean(0)
    return losses.sum(), losses.detach(), errors
