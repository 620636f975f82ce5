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

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.probes._forward import _first_tensor, _forward, _forward_shape, _loss, _untouched
from reslab.probes.grad_norms import param_grad_norms
from reslab.probes.path import _noise_lag1, _selector, path_points, shattering  # noqa: F401  (part 2, re-exported)
from reslab.probes.shattering import (ACTIVATIONS, BATCHNORMS, activation_activity, autocorrelation,  # noqa: F401
                                      brown_noise, check_float_input, grid_batch_stats, white_noise)

VANISH_BELOW = 1e-2     # first/last gradient ratio below this: vanishing
EXPLODE_ABOVE = 1e2     # first/last gradient ratio above this: exploding
# shattered: the path derivative's lag-1 autocorrelation is below the midpoint of white
# noise's and brown noise's on the same number of points (about 0.49 for 256 points)
ROOT = "(model)"        # the name shown for parameters owned by the model itself


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


# ---------------------------------------------------------------- 1. gradient norms

def _ratio(a: float, b: float) -> float:
    if b == 0:
        return math.inf if a > 0 else math.nan
    return a / b


def _flag(ratio: float, finite: bool) -> str:
    if not finite:
        return "exploding (non-finite)"
    if math.isnan(ratio):
        return "no gradient"
    if ratio < VANISH_BELOW:
        return "vanishing"
    if ratio > EXPLODE_ABOVE:
        return "exploding"
    return "ok"


def gradient_norms(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Part 1 of :func:`probe`: ``{"params": {...}, "outputs": {...}, "loss": ..., "flag": ...}``.
    Changes the model's grads, buffers and modes; :func:`probe` restores them."""
    names = {m: (n or ROOT) for n, m in model.named_modules()}
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    if not owners:
        raise ReslabError("the model has no parameters")
    calls, out_sq, loss, loss_name, finite_loss = _backward(model, owners, inputs, targets, seed)
    try:
        norms = param_grad_norms(model)
        per_param = param_grad_norms(model, by="parameter")
    except ReslabError:
        raise ReslabError("no parameter received a gradient: "
                          "the model's output does not depend on its parameters") from None
    key = _forward_order(model, calls)
    params = _param_series(model, names, key, norms, finite_loss)
    params["by_parameter"] = per_param
    outputs = _output_series(names, key, out_sq, finite_loss)
    flags = {params["flag"], outputs["flag"]} - {"ok", "no gradient"}
    return {
        "loss": loss_name, "loss_value": float(loss.detach()),
        "params": params, "outputs": outputs, "flag": "+".join(sorted(flags)) or "ok",
        "thresholds": {"vanishing_below": VANISH_BELOW, "exploding_above": EXPLODE_ABOVE},
    }


def _backward(model: nn.Module, owners: list[nn.Module], inputs: torch.Tensor, targets: torch.Tensor | None,
              seed: int) -> tuple[dict[nn.Module, int], dict[nn.Module, torch.Tensor], torch.Tensor, str, bool]:
    """One training-mode forward and backward of the loss, with hooks on the parameters'
    owners: ``(call order, sum of squares of dL/dh at each owner's output, loss, its name,
    whether it is finite)``."""
    calls: dict[nn.Module, int] = {}
    out_sq: dict[nn.Module, torch.Tensor] = {}

    def pre(module, args):
        calls.setdefault(module, len(calls))

    def post(module, args, output):
        t = _first_tensor(output)
        if t is not None and t.requires_grad and t.is_floating_point():
            def keep(g, module=module):
                out_sq[module] = out_sq.get(module, 0) + g.detach().double().square().sum()
            t.register_hook(keep)

    handles = [m.register_forward_pre_hook(pre) for m in owners] + [m.register_forward_hook(post) for m in owners]
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        out = _forward(model, inputs)
        loss, loss_name = _loss(out, targets, seed)
        finite_loss = bool(torch.isfinite(loss))
        if loss.requires_grad:
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    return calls, out_sq, loss, loss_name, finite_loss


def _forward_order(model: nn.Module, calls: dict[nn.Module, int]) -> Callable[[nn.Module], tuple[int, int]]:
    """Sort key for forward order: first call; a module never called sits right after its
    nearest called ancestor."""
    parent = {}
    for n, m in model.named_modules():
        for cn, c in m.named_children():
            parent[c] = m
    reg = {m: i for i, m in enumerate(model.modules())}

    def key(m):
        a = m
        while a not in calls and a in parent:
            a = parent[a]
        return (calls.get(a, len(reg)), reg[m])

    return key


def _param_series(model: nn.Module, names: dict[nn.Module, str], key: Callable, norms: dict[str, float],
                  finite_loss: bool) -> dict[str, Any]:
    """The parameter-gradient series in forward order; first and last among the groups that
    hold a weight matrix or kernel."""
    by_name = {n or ROOT: m for n, m in model.named_modules()}
    order = sorted((by_name[n or ROOT] for n in norms), key=key)
    params = {names[m]: norms[_raw(names[m])] for m in order}
    weighted = [names[m] for m in order if any(p.dim() >= 2 for p in m.parameters(recurse=False))] or list(params)
    finite = finite_loss and all(math.isfinite(v) for v in params.values())
    ratio = _ratio(params[weighted[0]], params[weighted[-1]])
    return {"norms": params, "first": weighted[0], "last": weighted[-1], "first_over_last": ratio,
            "flag": _flag(ratio, finite)}


def _output_series(names: dict[nn.Module, str], key: Callable, out_sq: dict[nn.Module, torch.Tensor],
                   finite_loss: bool) -> dict[str, Any]:
    """The backpropagated-gradient series ``||dL/dh||`` at the owners' outputs, in forward order."""
    order = sorted(out_sq, key=key)
    outputs = {names[m]: float(out_sq[m].sqrt()) for m in order}
    finite = finite_loss and all(math.isfinite(v) for v in outputs.values())
    ratio = _ratio(outputs[names[order[0]]], outputs[names[order[-1]]]) if outputs else math.nan
    return {"norms": outputs, "first": names[order[0]] if outputs else None,
            "last": names[order[-1]] if outputs else None, "first_over_last": ratio,
            "flag": _flag(ratio, finite) if outputs else "no gradient"}


def _raw(name: str) -> str:
    return "" if name == ROOT else name


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
