"""Input-gradient probes for shattered gradients (Balduzzi et al. 2017, arXiv 1702.08591).

Everything here works on any model that maps a batch ``(N, 1)`` to ``(N, 1)``, or a batch
of any shape to one scalar per sample.

BatchNorm choice: a BN layer normalises with the statistics of the
*grid* (the batch of N inputs), and those statistics are held fixed when differentiating:
``df(x_i)/dx_i`` treats each layer's mean and variance as constants.  The outputs are then
exactly the train-mode outputs on the grid, samples no longer interact, and one backward
of ``sum_i f(x_i)`` gives all N per-input derivatives.  (Letting the gradient flow through
the statistics would mix the inputs; using running statistics at init would make every
BN the identity.)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def input_grid(n: int = 256, lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    """``n`` equally spaced scalar inputs in ``[lo, hi]``, shape ``(n, 1)``."""
    if n < 2 or not lo < hi:
        raise ReslabError(f"grid needs n >= 2 points and lo < hi, got n={n}, [{lo}, {hi}]")
    return torch.linspace(lo, hi, n).unsqueeze(1)


def _grid_stats_bn(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: redo BN with this batch's statistics, detached (held fixed)."""
    x = inputs[0]
    dims = [d for d in range(x.dim()) if d != 1]
    xd = x.detach()
    mean = xd.mean(dims)
    # BN normalises with the biased variance.  (Tensor.var over dim 0 is ~10x slower on CPU.)
    var = (xd - mean.view([1, -1] + [1] * (x.dim() - 2))).square().mean(dims)
    # eval-mode batch_norm with given statistics: an affine map of x, so samples do not interact
    return F.batch_norm(x, mean, var, module.weight, module.bias, training=False, eps=module.eps)


@contextlib.contextmanager
def grid_batch_stats(model: nn.Module) -> Iterator[nn.Module]:
    """Inside: ``model`` is in eval mode (no buffer changes) and every BatchNorm normalises
    with the current batch's statistics, held fixed for autograd.  Afterwards the model's
    train/eval flags are restored; its running statistics were never touched."""
    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(_grid_stats_bn) for m in model.modules() if isinstance(m, BATCHNORMS)]
    model.eval()
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode


def input_gradients(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``df/dx`` at each input, shape ``(N,)`` for scalar inputs (else ``x``'s shape).

    BN statistics are the batch's, held fixed (module docstring).  Parameters get no grads.
    """
    x = x.detach().clone().requires_grad_(True)
    with grid_batch_stats(model):
        out = model(x)
        if out.dim() > 1 and out[0].numel() != 1:
            raise ReslabError(f"input_gradients needs one scalar output per sample, got shape {tuple(out.shape)}")
        (grad,) = torch.autograd.grad(out.sum(), x)
    return grad.squeeze(1) if grad.dim() == 2 and grad.shape[1] == 1 else grad


def autocorrelation(g: torch.Tensor, max_lag: int | None = None) -> torch.Tensor:
    """Normalised autocorrelation of sequences along the last axis, lags ``0..max_lag``.

    ``rho(k) = sum_i (g_i - m)(g_{i+k} - m) / sum_i (g_i - m)^2`` with ``m`` the mean: the
    standard biased estimator, so ``rho(0) = 1`` and white noise gives ``rho(k) ~ 0``.
    A constant sequence has no autocorrelation: NaN.
    """
    n = g.shape[-1]
    max_lag = n - 1 if max_lag is None else max_lag
    if not 0 <= max_lag < n:
        raise ReslabError(f"max_lag must be in [0, {n - 1}], got {max_lag}")
    c = g.double() - g.double().mean(-1, keepdim=True)
    denom = (c * c).sum(-1)
    rho = torch.stack([(c[..., : n - k] * c[..., k:]).sum(-1) for k in range(max_lag + 1)], -1)
    return (rho / denom.unsqueeze(-1)).to(g.dtype if g.is_floating_point() else torch.float64)


def lag1_autocorrelation(g: torch.Tensor) -> torch.Tensor:
    """``rho(1)`` along the last axis: about 0 for white noise, about 1 for brown noise."""
    return autocorrelation(g, 1)[..., 1]


def gradient_covariance(grads: torch.Tensor) -> torch.Tensor:
    """The ``(N, N)`` covariance of gradients over samples (rows of ``grads``, shape ``(S, N)``),
    each row first standardised to mean 0, std 1 over the grid, so the matrix is a
    correlation estimate: a narrow diagonal for white noise, broad for brown noise."""
    if grads.dim() != 2 or grads.shape[0] < 1:
        raise ReslabError(f"gradient_covariance needs (samples, points), got shape {tuple(grads.shape)}")
    g = grads.double()
    g = (g - g.mean(1, keepdim=True)) / g.std(1, unbiased=False, keepdim=True)
    return (g.T @ g / g.shape[0]).to(grads.dtype)


def white_noise(samples: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(samples, n)`` i.i.d. standard normal."""
    return torch.randn(samples, n, generator=generator)


def brown_noise(samples: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(samples, n)`` random walks: the cumulative sum of white noise."""
    return white_noise(samples, n, generator).cumsum(1)


def relu_activity(model: nn.Module, x: torch.Tensor) -> dict[str, list[float]]:
    """Per ``nn.ReLU`` module, in forward order: the share of units active (> 0) over
    inputs, and the share *co-active* for a pair of distinct inputs, averaged over all
    pairs.  BN statistics are the batch's (as :func:`input_gradients`).

    With a unit active on ``k`` of ``N`` inputs, ``k(k-1) / (N(N-1))`` of the pairs find
    it co-active, so co-activity is 1/4 when each unit fires on half the inputs and
    approaches 1/2 when units fire on all inputs or none (shared activation patterns).
    ReLUs called functionally (``F.relu``) are invisible to this probe.
    """
    patterns: list[torch.Tensor] = []

    def record(module, inputs, output):
        patterns.append((output.detach() > 0).flatten(1))

    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ReslabError("relu_activity: the model has no nn.ReLU modules")
    handles = [m.register_forward_hook(record) for m in relus]
    try:
        with torch.no_grad(), grid_batch_stats(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    n = x.shape[0]
    if n < 2:
        raise ReslabError("relu_activity needs at least 2 inputs")
    active, coactive = [], []
    for a in patterns:
        k = a.double().sum(0)  # inputs on which each unit is active
        active.append(float(k.mean() / n))
        coactive.append(float((k * (k - 1)).mean() / (n * (n - 1))))
    return {"active": active, "coactive": coactive}
