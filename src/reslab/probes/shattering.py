"""Input-gradient probes for shattered gradients (Balduzzi et al. 2017, arXiv 1702.08591).

:func:`input_gradients` works on any model with floating-point inputs: by default it
needs one scalar output per sample; ``output=`` picks one logit of a classifier, or any
function of the output (a loss).  :func:`activation_activity` hooks any elementwise
activation module (ReLU, GELU, SiLU, LeakyReLU, sigmoid, ...); :func:`relu_activity` is its
original ReLU-only form.

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
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError

# SyncBatchNorm counts: under grid_batch_stats the model is in eval mode (SyncBatchNorm then
# uses no process group) and the hook recomputes the output with plain F.batch_norm, so it
# works in a process without torch.distributed, as on one GPU or a CPU.
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

# Elementwise activation modules :func:`activation_activity` hooks by default.
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
               nn.Mish, nn.Softplus, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
               nn.LogSigmoid, nn.Softsign, nn.Tanhshrink)


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


def check_float_input(x, what: str = "the probe") -> None:
    """Inputs must be a floating-point tensor: integer ids (tokens, labels) have no gradient."""
    if not isinstance(x, torch.Tensor):
        raise ReslabError(f"{what} needs a tensor input, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ReslabError(f"{what} needs floating-point inputs to differentiate; got {x.dtype} "
                          "(integer inputs such as token ids have no input-gradient; probe from the embedding on)")


def select_output(out, output=None) -> torch.Tensor:
    """The per-sample scalars (or one scalar) to differentiate, from a model's output.

    ``output=None``: the output itself, which must be one scalar per sample;
    an ``int``: that column (logit) of an ``(N, C, ...)`` output, summed over any further axes;
    a callable: ``output(out)``, e.g. a loss; a 0-d result is differentiated as is, a
    ``(N,)`` or ``(N, 1)`` one is summed.  Under :func:`grid_batch_stats` samples do not
    interact, so the gradient of a sum gives each sample's own gradient.
    """
    if not isinstance(out, torch.Tensor):
        raise ReslabError(f"the model returned a {type(out).__name__}, not a tensor; wrap it to return one tensor")
    if not out.is_floating_point():
        raise ReslabError(f"the model's output is {out.dtype}, not floating point: nothing to differentiate")
    if output is None:
        if out.dim() > 1 and out[0].numel() != 1:
            raise ReslabError(f"input_gradients needs one scalar output per sample, got shape {tuple(out.shape)}; "
                              "pass output=INDEX (a logit) or output=FUNCTION (e.g. a loss)")
        return out.sum()
    if isinstance(output, bool) or not (isinstance(output, int) or callable(output)):
        raise ReslabError(f"output must be None, a logit index or a function of the output, got {output!r}")
    if isinstance(output, int):
        if out.dim() < 2 or not -out.shape[1] <= output < out.shape[1]:
            raise ReslabError(f"output index {output} is out of range for an output of shape {tuple(out.shape)}")
        return out[:, output].sum()
    y = output(out)
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise ReslabError(f"output function returned {type(y).__name__}, not a floating-point tensor")
    if y.dim() > 1 and y[0].numel() != 1:
        raise ReslabError(f"output function must return one scalar, or one per sample; got shape {tuple(y.shape)}")
    return y.sum()


def input_gradients(model: nn.Module, x: torch.Tensor, output=None) -> torch.Tensor:
    """``df/dx`` at each input, shape ``(N,)`` for scalar inputs (else ``x``'s shape).

    ``f`` is chosen by ``output`` (:func:`select_output`): the model's output when it is one
    scalar per sample (default), logit ``output`` if an int, or ``output(model(x))`` if a
    callable (for example a loss against fixed targets).  BN statistics are the batch's,
    held fixed (module docstring).  Parameters get no grads.
    """
    check_float_input(x, "input_gradients")
    x = x.detach().clone().requires_grad_(True)
    with grid_batch_stats(model):
        f = select_output(model(x), output)
        if not f.requires_grad:
            raise ReslabError("the model's output does not depend differentiably on its input")
        (grad,) = torch.autograd.grad(f, x, allow_unused=True)
    if grad is None:
        raise ReslabError("the model's output does not depend differentiably on its input")
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
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ReslabError("relu_activity: the model has no nn.ReLU modules")
    if x.shape[0] < 2:
        raise ReslabError("relu_activity needs at least 2 inputs")
    act = activation_activity(model, x, (nn.ReLU,), mode="sign")  # z > 0 is output > 0 for a ReLU
    return {"active": act["active"], "coactive": act["coactive"]}


def _activity_numbers(a: torch.Tensor) -> tuple[float, float]:
    n = a.shape[0]
    k = a.double().sum(0)
    return float(k.mean() / n), float((k * (k - 1)).mean() / (n * (n - 1)))


def activation_activity(model: nn.Module, x: torch.Tensor, types: tuple = ACTIVATIONS, *,
                        mode: str = "sign", threshold: float = 0.1) -> dict[str, Any]:
    """Activity and co-activity of every activation module of ``types`` (any elementwise
    activation: ReLU, GELU, SiLU, LeakyReLU, ELU, sigmoid, tanh, ... ; default
    :data:`ACTIVATIONS`), in forward order, one entry per call.

    When a unit is *active* on an input, with ``z`` the activation's input (pre-activation):

    * ``mode="sign"`` (default): ``z > 0``.  For ReLU that is ``output > 0``, as in
      :func:`relu_activity`; for GELU, SiLU, LeakyReLU, ELU, ... it is the side where the
      unit passes its input on almost linearly; for sigmoid/tanh it is the upper half.
    * ``mode="derivative"``: ``|f'(z)| > threshold`` (default 0.1), the derivative taken
      elementwise by autograd: the unit lets gradient through.  For ReLU the same as
      ``z > 0``; for sigmoid (f' <= 1/4) it means |z| < 2.2, i.e. not saturated.

    Co-activity is the share of pairs of distinct inputs on which a unit is active on both,
    averaged over units and pairs (see :func:`relu_activity`: 1/4 for units active on half
    the inputs).  BN statistics are the batch's (as :func:`input_gradients`).  Functional
    calls (``F.gelu``) are invisible.  Returns ``{"names", "types", "active", "coactive"}``.
    """
    if mode not in ("sign", "derivative"):
        raise ReslabError(f"activation_activity: mode must be 'sign' or 'derivative', got {mode!r}")
    check_float_input(x, "activation_activity")
    if x.shape[0] < 2:
        raise ReslabError("activation_activity needs at least 2 inputs")
    names = {m: n for n, m in model.named_modules()}
    acts = [m for m in model.modules() if isinstance(m, tuple(types))]
    if not acts:
        raise ReslabError("activation_activity: the model has no activation modules of the types "
                          + ", ".join(t.__name__ for t in types) + " (functional calls such as F.gelu are invisible)")
    rows: list[tuple[str, str, torch.Tensor]] = []

    def record(module, inputs, output):
        z = inputs[0].detach()
        if mode == "sign":
            a = z > 0
        else:
            with torch.enable_grad():
                zz = z.clone().requires_grad_(True)
                (d,) = torch.autograd.grad(module.forward(zz).sum(), zz)  # .forward: no hooks
            a = d.abs() > threshold
        rows.append((names[module], type(module).__name__, a.flatten(1)))

    handles = [m.register_forward_hook(record) for m in acts]
    try:
        with torch.no_grad(), grid_batch_stats(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    active, coactive = zip(*(_activity_numbers(a) for _, _, a in rows)) if rows else ((), ())
    return {"names": [r[0] for r in rows], "types": [r[1] for r in rows], "active": list(active),
            "coactive": list(coactive)}
