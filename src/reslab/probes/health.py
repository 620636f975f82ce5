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

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.probes.grad_norms import param_grad_norms
from reslab.probes.shattering import (ACTIVATIONS, BATCHNORMS, activation_activity, autocorrelation, brown_noise,
                                      check_float_input, grid_batch_stats, white_noise)

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


# ---------------------------------------------------------------- preserving the model

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


def gradient_norms(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Part 1 of :func:`probe`: ``{"params": {...}, "outputs": {...}, "loss": ..., "flag": ...}``.
    Changes the model's grads, buffers and modes; :func:`probe` restores them."""
    names = {m: (n or ROOT) for n, m in model.named_modules()}
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    if not owners:
        raise ReslabError("the model has no parameters")
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
    try:
        norms = param_grad_norms(model)
        per_param = param_grad_norms(model, by="parameter")
    except ReslabError:
        raise ReslabError("no parameter received a gradient: "
                          "the model's output does not depend on its parameters") from None

    # forward order: first call; a module never called sits right after its nearest called ancestor
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

    by_name = {n or ROOT: m for n, m in model.named_modules()}
    order = sorted((by_name[n or ROOT] for n in norms), key=key)
    params = {names[m]: norms[_raw(names[m])] for m in order}
    weighted = [names[m] for m in order if any(p.dim() >= 2 for p in m.parameters(recurse=False))] or list(params)
    p_first, p_last = params[weighted[0]], params[weighted[-1]]
    p_finite = finite_loss and all(math.isfinite(v) for v in params.values())
    p_ratio = _ratio(p_first, p_last)

    outs_order = sorted(out_sq, key=key)
    outputs = {names[m]: float(out_sq[m].sqrt()) for m in outs_order}
    o_finite = finite_loss and all(math.isfinite(v) for v in outputs.values())
    o_ratio = _ratio(outputs[names[outs_order[0]]], outputs[names[outs_order[-1]]]) if outputs else math.nan
    flags = {_flag(p_ratio, p_finite), _flag(o_ratio, o_finite) if outputs else "ok"}
    flags.discard("ok")
    flags.discard("no gradient")
    flag = "+".join(sorted(flags)) or "ok"
    return {
        "loss": loss_name, "loss_value": float(loss.detach()),
        "params": {"norms": params, "first": weighted[0], "last": weighted[-1], "first_over_last": p_ratio,
                   "flag": _flag(p_ratio, p_finite), "by_parameter": per_param},
        "outputs": {"norms": outputs, "first": names[outs_order[0]] if outputs else None,
                    "last": names[outs_order[-1]] if outputs else None, "first_over_last": o_ratio,
                    "flag": _flag(o_ratio, o_finite) if outputs else "no gradient"},
        "flag": flag,
        "thresholds": {"vanishing_below": VANISH_BELOW, "exploding_above": EXPLODE_ABOVE},
    }


def _raw(name: str) -> str:
    return "" if name == ROOT else name


# ---------------------------------------------------------------- 2. shattering

def path_points(inputs: torch.Tensor, path: str = "line", points: int = 256, radius: float = 2.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(points, dx/dt)``: ``points`` inputs along a 1-D path and the path's velocity.

    ``line``: ``x0 + t * radius * s * sqrt(D) * u``, t in [-1, 1], with ``x0 = inputs[0]``,
    ``u`` a random unit direction, ``s`` the inputs' standard deviation over all entries
    (1 for a single input) and ``D`` the entries per input: about ``radius`` standard
    deviations per entry.  ``segment``: ``inputs[0] + t (inputs[1] - inputs[0])``, t in [0, 1].
    """
    if points < 4:
        raise ReslabError(f"the path needs at least 4 points, got {points}")
    x0 = inputs[0]
    if path == "line":
        if not (math.isfinite(radius) and radius > 0):
            raise ReslabError(f"radius must be a finite number > 0, got {radius}")
        u = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        u = (u / u.norm()).to(x0.dtype).to(x0.device)
        s = float(inputs.double().std()) if inputs.shape[0] > 1 and inputs.numel() > 1 else 1.0
        s = s if s > 0 and math.isfinite(s) else 1.0
        v = 2 * radius * s * math.sqrt(x0.numel()) * u  # d x / d t over t in [0, 1]
        start = x0 - v / 2
    elif path == "segment":
        if inputs.shape[0] < 2:
            raise ReslabError("path='segment' needs two inputs (inputs[0] and inputs[1])")
        v = inputs[1] - x0
        if not bool(v.abs().sum() > 0):
            raise ReslabError("path='segment' needs two different inputs")
        start = x0
    else:
        raise ReslabError(f"unknown path {path!r}; valid: line, segment")
    t = torch.linspace(0, 1, points, dtype=x0.dtype, device=x0.device).view([-1] + [1] * x0.dim())
    return start.unsqueeze(0) + t * v.unsqueeze(0), v


def _selector(output, out_at_x0: torch.Tensor, targets: torch.Tensor | None, seed: int = 0):
    """The ``output=`` of input_gradients and its description."""
    per_sample_scalar = out_at_x0.dim() <= 1 or out_at_x0[0].numel() == 1
    if output is None:
        if per_sample_scalar:
            return None, "the model's output"
        if targets is not None:
            output = "loss"
        elif out_at_x0.dim() == 2:
            idx = int(out_at_x0[0].argmax())
            return idx, f"logit {idx} (the class predicted at inputs[0])"
        else:
            g = torch.Generator().manual_seed(seed)
            r = torch.randn(out_at_x0.shape[1:], generator=g, dtype=out_at_x0.dtype).to(out_at_x0.device)
            return (lambda out: (out * r).sum()), "a fixed random projection of the output"
    if output == "loss":
        if targets is None:
            raise ReslabError("output='loss' needs targets")
        t0 = targets[:1]
        if not t0.is_floating_point():
            return (lambda out: F.cross_entropy(out, t0.to(out.device).expand(out.shape[0], *t0.shape[1:]),
                                                reduction="sum"),
                    "the cross-entropy loss against targets[0]")
        return (lambda out: F.mse_loss(out, t0.to(out.device).expand_as(out), reduction="sum"),
                "the squared error against targets[0]")
    if isinstance(output, bool) or not (isinstance(output, int) or callable(output)):
        raise ReslabError(f"output must be None, 'loss', a logit index or a function of the output, got {output!r}")
    if isinstance(output, int):
        return output, f"logit {output}"
    return output, getattr(output, "__name__", "a function of the output")


def _noise_lag1(kind: str, n: int, samples: int = 200, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    noise = (white_noise if kind == "white" else brown_noise)(samples, n, g)
    return float(autocorrelation(noise, 1)[:, 1].mean())


def shattering(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None, *, output=None,
               path: str = "line", points: int = 256, radius: float = 2.0, seed: int = 0,
               max_lag: int = 32) -> dict[str, Any]:
    """Part 2 of :func:`probe` (see the module docstring); also returns the path's points
    under ``"_points"`` for the activity probe (not JSON)."""
    from reslab.probes.shattering import input_gradients

    g = torch.Generator().manual_seed(seed)
    pts, velocity = path_points(inputs, path, points, radius, g)
    with torch.no_grad(), grid_batch_stats(model):
        out = _forward(model, pts)
    center = points // 2 if path == "line" else 0
    sel, what = _selector(output, out[center:center + 1], targets, seed)
    grads = input_gradients(model, pts, sel)
    grads = grads.reshape(points, -1).double()
    deriv = grads @ velocity.reshape(-1).double().to(grads.device)  # d f(x(t)) / dt
    deriv = deriv.cpu()
    finite = bool(torch.isfinite(deriv).all())
    spread = float(deriv.std()) if finite else math.nan
    scale = float(deriv.abs().mean()) if finite else math.nan
    linear = finite and spread <= 1e-5 * max(scale, 1e-30)
    max_lag = min(max_lag, points - 1)
    if finite and not linear:
        acf = autocorrelation(deriv, max_lag).tolist()
        lag1 = acf[1]
    else:
        acf, lag1 = None, None
    gn = grads.norm(dim=1)
    cos = (grads[1:] * grads[:-1]).sum(1) / (gn[1:] * gn[:-1]).clamp_min(1e-300)
    white, brown = _noise_lag1("white", points, seed=seed), _noise_lag1("brown", points, seed=seed)
    if not finite:
        flag = "non-finite gradient"
    elif linear:
        flag = "linear along the path"
    else:
        flag = "shattered" if lag1 < (white + brown) / 2 else "ok"
    return {
        "of": what, "path": path, "points": points, "radius": radius if path == "line" else None,
        "derivative": deriv.tolist(), "acf": acf, "lag1": lag1,
        "neighbour_cosine": float(cos.mean()) if finite else None,
        "white_noise_lag1": white, "brown_noise_lag1": brown,
        "flag": flag, "threshold": {"shattered_below": (white + brown) / 2},
        "_points": pts,
    }


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


def _forward_shape(model: nn.Module, inputs: torch.Tensor) -> torch.Size:
    with torch.no_grad(), grid_batch_stats(model):
        return _forward(model, inputs).shape
