"""Forward passes for :mod:`reslab.probes.health` that leave the model as it was and turn a
model's refusal into a one-line :class:`~reslab.errors.ReslabError`: :func:`_untouched`
(restore modes, grads, buffers and the RNG state), :func:`_forward` (one checked forward
pass), :func:`_forward_shape` and :func:`_loss` (the loss the gradient-norm probe backpropagates)."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.probes.shattering import grid_batch_stats


@contextlib.contextmanager
def _untouched(model: nn.Module):
    """Restore train/eval flags, parameter grads, buffers and the RNG state afterwards."""
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.grad for p in model.parameters()}
    buffers = {b: b.detach().clone() for b in model.buffers()}
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            for m, mode in modes.items():
                m.training = mode
            for p, g in grads.items():
                p.grad = g
            with torch.no_grad():
                for b, v in buffers.items():
                    b.copy_(v)


def _first_tensor(out) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    return None


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        out = model(x)
    except ReslabError:
        raise
    except Exception as err:  # the user's model refused the input: one line, not a traceback
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ReslabError(f"the model failed on inputs of shape {tuple(x.shape)}: "
                          f"{type(err).__name__}: {msg}") from None
    if not isinstance(out, torch.Tensor):
        raise ReslabError(f"the model returned a {type(out).__name__}, not a tensor; "
                          "the probe needs a model that returns one tensor")
    if not out.is_floating_point():
        raise ReslabError(f"the model's output is {out.dtype}, not floating point: nothing to differentiate")
    if out.dim() == 0 or out.shape[0] != x.shape[0]:
        raise ReslabError(f"the model's output {tuple(out.shape)} has no batch axis of size {x.shape[0]}")
    return out


def _forward_shape(model: nn.Module, inputs: torch.Tensor) -> torch.Size:
    with torch.no_grad(), grid_batch_stats(model):
        return _forward(model, inputs).shape


def _loss(out: torch.Tensor, targets: torch.Tensor | None, seed: int) -> tuple[torch.Tensor, str]:
    if targets is not None:
        targets = targets.to(out.device)
        if not targets.is_floating_point():
            if out.dim() < 2 or out.shape[1] < 2:
                raise ReslabError(f"integer targets need class scores (N, C>1); the output is {tuple(out.shape)}")
            if targets.shape != (out.shape[0],) + tuple(out.shape[2:]):
                raise ReslabError(f"targets of shape {tuple(targets.shape)} do not match output {tuple(out.shape)}")
            if targets.min() < 0 or targets.max() >= out.shape[1]:
                raise ReslabError(f"targets must be class indices in 0..{out.shape[1] - 1}")
            return F.cross_entropy(out, targets), "cross-entropy against the targets"
        if targets.shape != out.shape:
            raise ReslabError(f"float targets of shape {tuple(targets.shape)} do not match output {tuple(out.shape)}")
        return F.mse_loss(out, targets), "mean squared error against the targets"
    if out.dim() == 2 and out.shape[1] > 1:
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(out.shape[1], (out.shape[0],), generator=g).to(out.device)
        return F.cross_entropy(out, labels), "cross-entropy against random labels (no targets given)"
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(out.shape, generator=g, dtype=out.dtype).to(out.device)
    return F.mse_loss(out, noise), "mean squared error against random normal targets (no targets given)"
