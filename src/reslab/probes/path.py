"""Part 2 of :func:`reslab.probes.health.probe`: shattering along a 1-D path through input
space (see :mod:`reslab.probes.health` for what is measured and the flag's threshold).
:func:`path_points` lays out the path, :func:`shattering` measures the derivative along it."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.probes._forward import _forward
from reslab.probes.shattering import autocorrelation, brown_noise, grid_batch_stats, white_noise


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
