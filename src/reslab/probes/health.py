"""A gradient-health probe for any ``nn.Module``, at initialisation (or wherever it is).

``probe(model, inputs, targets=None)`` runs four measurements and returns a
:class:`ProbeReport` (``report.to_dict()`` is JSON-ready; ``report.findings`` says what
was flagged, in words):

1. **Gradient norms of all parameters**, grouped by the module that owns them
   (:func:`reslab.probes.grad_norms.param_grad_norms`), after one training-mode forward and
   backward of a loss; and the norm of the backpropagated gradient at each of those
   modules' outputs, ``||dL/dh||`` (hooks).  Both series are put in *forward* order (the
   order modules are first called; a module used functionally by its parent, such as
   ``nn.MultiheadAttention.out_proj``, sits with its parent).  The loss: cross-entropy
   for integer ``targets``, mean squared error for float ``targets`` of the output's
   shape; without targets, cross-entropy against random labels (seeded) for an ``(N, C)``
   output, else mean squared error against random N(0, 1) targets (seeded).

   Flags, thresholds fixed here (absolute, on the first/last ratio of each series):
   ``first/last < 1e-2``: **vanishing**; ``> 1e2``: **exploding**; a non-finite loss or
   gradient: **exploding (non-finite)**.  The parameter series uses the groups that hold a
   weight matrix or kernel (a parameter of 2 or more dimensions) for first and last.
   Both series are needed, and either can mislead alone: in a net without normalisation whose weights are too large,
   the *weight* gradients stay level (``dL/dW_l = dL/dh_l a_{l-1}^T``: the activations
   grow forward as fast as the gradient grows backward) while ``||dL/dh_l||`` explodes;
   see :mod:`reslab.experiments.exploding`.  Conversely a layer followed by BN is scale
   invariant, so its weight gradient says little (``mlp(..., residual=True)`` on a scalar
   input: BN removes every dependence on the stem's weights, whose gradient is then ~0
   and the parameter series reads "vanishing" although ``||dL/dh||`` is level).

2. **Shattering** (Balduzzi et al. 2017): the input-gradient of a chosen scalar along a
   1-D path through input space, ``points`` inputs on a line through ``inputs[0]`` in a
   random direction (``path="line"``; half-length ``radius`` x the inputs' standard
   deviation per element) or on the segment from ``inputs[0]`` to ``inputs[1]``
   (``path="segment"``).  The scalar (``output``): the model's output when it has one per
   sample; else a logit index; ``"loss"`` (against ``targets[0]``); or a function of the
   output; default: the loss if targets are given, else the logit predicted at
   ``inputs[0]`` for an ``(N, C)`` output, else a fixed random projection of the output.
   The sequence analysed is the derivative along the path, ``d f(x(t)) / dt``; BN statistics are those of the path's
   points, held fixed (:mod:`reslab.probes.shattering`).  Reported: the autocorrelation
   function (ACF), its lag-1 value beside white noise's and brown noise's (random walks)
   on the same number of points, and the mean cosine between neighbouring full gradient
   vectors.  Flag, fixed here: lag-1 below the midpoint of white noise's and brown noise's
   lag-1 on the same number of points (closer to white noise than to brown noise; about
   0.49 for 256 points, 0.37 for 32): **shattered**.  A derivative constant along the path (the net is linear
   there) has no autocorrelation: reported as ``linear along the path``, not shattered.

3. **Activation activity and co-activity** of every elementwise activation module over
   the path's points (:func:`reslab.probes.shattering.activation_activity`, ``mode="sign"``).

4. **BatchNorm statistics** (BatchNorm1d/2d/3d and SyncBatchNorm) of each BN layer's input
   over ``inputs``: mean |channel mean|, mean and minimum channel variance, and the share
   of channels with (near) zero variance.

The model is left as it was: train/eval flags, parameter ``.grad``\\ s, buffers (BN
running statistics) and the global RNG state are restored.  A model the probe cannot use
(integer inputs such as token ids, a non-tensor output, an output that does not depend
on the input) is a :class:`~reslab.errors.ReslabError` with one line saying why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.probes._forward import _forward, _forward_shape, _untouched
from reslab.probes.gradient_flow import EXPLODE_ABOVE, VANISH_BELOW, gradient_norms  # noqa: F401  (part 1)
from reslab.probes.path import path_points, shattering  # noqa: F401  (part 2, re-exported)
from reslab.probes.shattering import (ACTIVATIONS, BATCHNORMS, activation_activity, autocorrelation,  # noqa: F401
                                      brown_noise, check_float_input, grid_batch_stats, white_noise)



@dataclass
class ProbeReport:
    """What :func:`probe` measured.  ``findings``: the flags in words (empty: healthy)."""

    model: str
    input_shape: list[int]
    output_shape: list[int]
    gradients: dict[str, Any]
    shattering: dict[str, Any]
    activity: dict[str, Any] | None
    batchnorm: list[dict[str, Any]]
    findings: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, key: str) -> Any:  # report["gradients"] works like a dict
        return getattr(self, key)


# ---------------------------------------------------------------- 1. gradient norms: reslab.probes.gradient_flow
# ---------------------------------------------------------------- 2. shattering: reslab.probes.path
# ---------------------------------------------------------------- 3. activity: shattering.activation_activity
# ---------------------------------------------------------------- 4. BN statistics

def batchnorm_stats(model: nn.Module, inputs: torch.Tensor) -> list[dict[str, Any]]:
    """Per BN layer (incl. SyncBatchNorm), in forward order: statistics of its input over
    the batch (per channel, then summarised)."""
    names = {m: n for n, m in model.named_modules()}
    rows: list[dict[str, Any]] = []

    def record(module, args, output):
        x = args[0].detach().double()
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dims)
        var = (x - mean.view([1, -1] + [1] * (x.dim() - 2))).square().mean(dims)
        rows.append({"name": names[module], "type": type(module).__name__, "channels": int(mean.numel()),
                     "mean_abs_mean": float(mean.abs().mean()), "mean_var": float(var.mean()),
                     "min_var": float(var.min()), "dead_share": float((var <= 1e-12).double().mean()),
                     "running_stats_at_init": bool(module.running_mean is not None
                                                   and bool((module.running_mean == 0).all())
                                                   and bool((module.running_var == 1).all()))})

    bns = [m for m in model.modules() if isinstance(m, BATCHNORMS)]
    handles = [m.register_forward_hook(record) for m in bns]
    try:
        with torch.no_grad(), grid_batch_stats(model):
            _forward(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return rows


# ---------------------------------------------------------------- the probe

def probe(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None, *,
          output: None | int | str | Callable = None, path: str = "line", points: int = 256,
          radius: float = 2.0, seed: int = 0, activity_types: tuple = ACTIVATIONS,
          name: str | None = None) -> ProbeReport:
    """Probe ``model``'s gradient health on a batch ``inputs`` (float, ``(N, ...)``); see
    the module docstring for what is measured and the thresholds of each flag."""
    if not isinstance(model, nn.Module):
        raise ReslabError(f"probe needs a torch.nn.Module, got {type(model).__name__}")
    check_float_input(inputs, "the probe")
    if inputs.dim() < 1 or inputs.shape[0] < 2:
        raise ReslabError(f"the probe needs a batch of at least 2 inputs, got shape {tuple(inputs.shape)}")
    if not bool(torch.isfinite(inputs).all()):
        raise ReslabError("the inputs contain inf or NaN")
    if targets is not None and (not isinstance(targets, torch.Tensor) or targets.shape[0] != inputs.shape[0]):
        raise ReslabError("targets must be a tensor with one entry per input")
    param = next(model.parameters(), None)
    if param is not None:
        inputs = inputs.to(param.device)
    findings: list[str] = []
    with _untouched(model):
        torch.manual_seed(seed)
        grads = gradient_norms(model, inputs, targets, seed)
        out_shape = list(_forward_shape(model, inputs))
        shat = shattering(model, inputs, targets, output=output, path=path, points=points, radius=radius, seed=seed)
        pts = shat.pop("_points")
        try:
            act = activation_activity(model, pts, activity_types)
        except ReslabError:
            act = None
        bn = batchnorm_stats(model, inputs)
    if grads["flag"] != "ok":
        p, o = grads["params"], grads["outputs"]
        findings.append(f"gradients {grads['flag']}: parameter-gradient first/last = {p['first_over_last']:.3g} "
                        f"({p['first']} / {p['last']}), output-gradient first/last = {o['first_over_last']:.3g} "
                        f"(thresholds {VANISH_BELOW:g} and {EXPLODE_ABOVE:g})")
    if shat["flag"] in ("shattered", "non-finite gradient"):
        lag = "" if shat["lag1"] is None else (
            f": lag-1 autocorrelation {shat['lag1']:.3f} (white noise {shat['white_noise_lag1']:.3f}, "
            f"brown noise {shat['brown_noise_lag1']:.3f}, threshold {shat['threshold']['shattered_below']:.3f})")
        findings.append(f"input-gradient {shat['flag']}{lag}")
    dead = [r["name"] for r in bn if r["dead_share"] > 0.5]
    if dead:
        findings.append(f"BatchNorm layers whose input is (nearly) constant in most channels: {', '.join(dead[:5])}")
    return ProbeReport(
        model=name or type(model).__name__, input_shape=list(inputs.shape), output_shape=out_shape,
        gradients=grads, shattering=shat, activity=act, batchnorm=bn, findings=findings,
        settings={"targets": targets is not None, "path": path, "points": points, "radius": radius, "seed": seed,
                  "bn": "batch statistics of the probed points, held fixed for input-gradients"},
    )
