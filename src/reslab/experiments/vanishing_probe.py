"""What the vanishing-gradient experiment measures: the sigmoid's derivative on a grid, and
per-layer gradients of one fully connected net at init and after a few SGD steps.

See :mod:`reslab.experiments.vanishing` for the design and :mod:`reslab.experiments.fcnets`
for the layer numbering.  ``cfg`` is a :class:`reslab.experiments.vanishing.Config`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.experiments.fcnets import (MAX_DERIVATIVE, LayerOutputs, build_net, floats, linears, spectral_norms,
                                       weight_grad_norms)

EXAMPLE_LAYERS = 10                         # the claim's "ten sigmoid layers": mlp(10)
_ACT_MODULES = (nn.Sigmoid, nn.Tanh, nn.ReLU)


def sigmoid_curve(cfg: Any) -> dict[str, Any]:
    """σ and σ' (by autograd, float64) on a symmetric grid whose middle point is exactly 0."""
    half = cfg.sigmoid_points // 2
    x = (torch.arange(-half, half + 1, dtype=torch.float64) * (cfg.sigmoid_range / half)).requires_grad_()
    s = torch.sigmoid(x)
    (ds,) = torch.autograd.grad(s.sum(), x)  # σ'(x) = σ(x)(1 − σ(x)), by autograd
    i = int(ds.argmax())
    return {"x": x.detach().tolist(), "sigmoid": s.detach().tolist(), "derivative": ds.tolist(),
            "max_derivative": float(ds[i]), "argmax": float(x.detach()[i]),
            "sigma_bound": {str(d): 0.25 ** d for d in cfg.depths}}  # σ' alone, weights' gain excluded


def probe(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """One forward and backward pass on a float64 copy of ``net`` (BN in training mode):
    ‖∂L/∂W_l‖ and ‖∂L/∂h_l‖ for l = 0..depth, and for l = 1..depth the mean σ'(z) at the
    input z of the activation feeding Linear l, and ‖W_l‖₂.  Float64, so that a 1e-50 ratio
    at depth 100 is a number, not a float32 underflow to 0."""
    net64 = copy.deepcopy(net).double().train()
    layers = linears(net64)
    acts = [m for m in net64.modules() if isinstance(m, _ACT_MODULES)]  # act k feeds Linear k+1
    inputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, i, _o: inputs.append(i[0].detach())) for m in acts]
    try:
        with LayerOutputs(layers) as outs:
            loss = nn.functional.cross_entropy(net64(x.double()), y)
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    dsigma = []
    for mod, z in zip(acts, inputs):
        z = z.clone().requires_grad_()
        (d,) = torch.autograd.grad(mod(z).sum(), z)
        dsigma.append(d.mean().item())
    return {"weight": weight_grad_norms(net64), "act": outs.grad_norms(), "dsigma": dsigma,
            "wnorm": spectral_norms(layers[1:]), "loss": loss.item()}


def measure(cfg: Any, activation: str, depth: int, seed: int, x, y) -> dict[str, Any]:
    """Gradients per layer at init and after ``cfg.steps`` SGD steps, for one net."""
    torch.manual_seed(seed)
    net = build_net(depth, activation, cfg.width, x.shape[1], 10, cfg.init_gain).train()
    px, py = x[:cfg.probe_batch], y[:cfg.probe_batch]
    p0 = probe(net, px, py)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.steps):
        idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    p1 = probe(net, px, py)
    return {"norms_init": p0["weight"], "norms_trained": p1["weight"],
            "ratio_init": ratio(p0["weight"]), "ratio_trained": ratio(p1["weight"]),
            "act_init": p0["act"], "act_trained": p1["act"], "act_ratio_init": ratio(p0["act"]),
            "dsigma_init": p0["dsigma"], "wnorm_init": p0["wnorm"],
            "loss_init": p0["loss"], "loss_trained": p1["loss"]}


def ratio(norms: list, first: int = 0, last: int = -1) -> float:
    """norms[first] / norms[last] (NaN if the last is not > 0)."""
    g = floats(norms)
    return float(g[first] / g[last]) if g[last] > 0 else float("nan")


def factors(act_norms: list) -> np.ndarray:
    """Measured backward factor per layer, l = 1..depth: ‖∂L/∂h_{l-1}‖ / ‖∂L/∂h_l‖."""
    g = floats(act_norms)
    return g[:-1] / g[1:]


def weight_bound(rec_wnorm: list, act: str, upto: int | None = None) -> float:
    """∏_{l=1..upto} σ'max·‖W_l‖₂: the bound on ‖∂L/∂h_0‖/‖∂L/∂h_upto‖ (no BN only)."""
    w = floats(rec_wnorm)[:upto]
    return float(np.prod(MAX_DERIVATIVE[act] * w))


def example(rec: dict[str, list]) -> dict[str, Any]:
    """The claim's ten-layer example from the records of mlp(10) sigmoid nets."""
    n = EXAMPLE_LAYERS - 1  # backward factors between the first and the tenth sigmoid layer
    return {"layers": EXAMPLE_LAYERS, "factors": n, "sigma_bound": 0.25 ** n,
            "ratio": [ratio(a, 0, n) for a in rec["act_init"]],
            "weight_bound": [weight_bound(w, "sigmoid", n) for w in rec["wnorm_init"]],
            "weight_grad_ratio": [ratio(w, 0, n) for w in rec["norms_init"]],
            "mean_factor": [float(np.exp(np.log(factors(a)[:n]).mean())) for a in rec["act_init"]],
            "mean_dsigma": [float(np.mean(d[:n])) for d in rec["dsigma_init"]],
            "mean_wnorm": [float(np.mean(w[:n])) for w in rec["wnorm_init"]]}
