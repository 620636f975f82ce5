"""What the exploding-gradient experiment measures: one short SGD run per condition, depth
and seed, stopped and located at the first non-finite value; and the numbers read back from
its record.  See :mod:`reslab.experiments.exploding` for the design and
:mod:`reslab.experiments.fcnets` for the layer numbering.  ``cfg`` is a
:class:`reslab.experiments.exploding.Config`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.experiments.fcnets import LayerOutputs, build_net, fit_factor, floats, linears, num, weight_grad_norms

# condition → (inputs, BN, which config field scales the weights)
CONDITIONS: dict[str, tuple[str, bool, str]] = {
    "gain": ("normalised", False, "layer_gain"),
    "gain+bn": ("normalised", True, "layer_gain"),
    "raw": ("raw", False, "init_gain"),
    "raw+bn": ("raw", True, "init_gain"),
    "normalised": ("normalised", False, "init_gain"),
    "normalised+bn": ("normalised", True, "init_gain"),
}


def train(cfg: Any, condition: str, depth: int, seed: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Up to ``cfg.steps`` SGD steps; stops at the first non-finite activation, loss or gradient.
    ``x`` are the inputs the condition asks for (raw or normalised).  Each SGD update's size
    relative to the first Linear's weights, ‖ΔW_0‖/‖W_0‖, is kept in ``update_first``: the
    layer that meets the inputs' scale."""
    _, bn, gain_field = CONDITIONS[condition]
    torch.manual_seed(seed)
    net = build_net(depth, "relu+bn" if bn else "relu", cfg.width, x.shape[1], 10, getattr(cfg, gain_field))
    net.train()
    layers = linears(net)
    names = {id(m): n for n, m in net.named_modules()}
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    rec: dict[str, Any] = {"loss": [], "grad_norm": [], "nonfinite": None, "act_grad0": None,
                           "update_first": [],
                           "layers": {"step": [], "grad": [], "act_rms": []}, "n_layers": len(layers)}

    def stop(step, phase, i):
        rec["nonfinite"] = {"step": step, "phase": phase, "layer": None if i is None else i + 1,
                            "layer_name": None if i is None else names[id(layers[i])]}

    with LayerOutputs(layers, retain_grad=True) as outs:
        grads: list = []
        for step in range(cfg.steps):
            idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
            outs.clear()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            rms = outs.rms()
            rec["loss"].append(loss.item())
            bad_fwd = [i for i, o in enumerate(outs.outputs) if not torch.isfinite(o).all()]
            if bad_fwd or not math.isfinite(loss.item()):
                rec["grad_norm"].append(None)
                stop(step, "forward" if bad_fwd else "loss", bad_fwd[0] if bad_fwd else None)
                _keep_layers(rec, step, [None] * len(layers), rms)
                break
            loss.backward()
            if step == 0:
                rec["act_grad0"] = outs.grad_norms()
            grads = weight_grad_norms(net)
            total = math.sqrt(sum(p.grad.detach().double().pow(2).sum().item()
                                  for p in net.parameters() if p.grad is not None))
            rec["grad_norm"].append(total)
            if step < cfg.layer_steps:
                _keep_layers(rec, step, grads, rms)
            if not math.isfinite(total):
                bad = [i for i, g in enumerate(grads) if not math.isfinite(g)]
                stop(step, "backward", bad[-1] if bad else None)  # backward runs output → input
                if step >= cfg.layer_steps:
                    _keep_layers(rec, step, grads, rms)
                break
            _step(opt, layers[0], rec)
        else:
            if cfg.steps - 1 >= cfg.layer_steps:
                _keep_layers(rec, cfg.steps - 1, grads, rms)
    return rec


def _step(opt: torch.optim.Optimizer, first: nn.Linear, rec: dict) -> None:
    """One SGD update, recording its size relative to the first Linear's weights."""
    before = first.weight.detach().clone()
    opt.step()
    with torch.no_grad():
        rel = ((first.weight - before).double().norm() / before.double().norm()).item()
    rec["update_first"].append(rel if math.isfinite(rel) else math.inf)  # overflowed weights: unbounded


def _keep_layers(rec: dict, step: int, grads: list, rms: list) -> None:
    rec["layers"]["step"].append(step)
    rec["layers"]["grad"].append(list(grads))
    rec["layers"]["act_rms"].append(list(rms))


def layer_growth(rec: dict, start: int = 0) -> dict[str, float]:
    """Step-0 growth of ‖∂L/∂h_l‖ toward the input, from layer ``start`` on: ``ratio``
    ‖∂L/∂h_start‖/‖∂L/∂h_L‖, and ``factor`` per layer from a least-squares line through
    log10‖∂L/∂h_l‖ over l (NaN if not measured)."""
    g = floats(rec.get("act_grad0") or [])[start:]
    if g.size < 2 or not np.all(np.isfinite(g) & (g > 0)):
        return {"ratio": float("nan"), "factor": float("nan")}
    return {"ratio": float(g[0] / g[-1]), "factor": fit_factor(g)}


def weight_grad0(rec: dict, layer: int) -> float:
    """Linear ``layer``'s weight-gradient norm at step 0 (NaN if not recorded)."""
    if not rec["layers"]["step"] or rec["layers"]["step"][0] != 0:
        return float("nan")
    return float(floats(rec["layers"]["grad"][0])[layer])


def weight_ratio0(rec: dict) -> float:
    """First/last Linear weight-gradient norm at step 0 (NaN if not recorded)."""
    last = weight_grad0(rec, -1)
    return weight_grad0(rec, 0) / last if last > 0 else float("nan")


def max_finite(rec: dict) -> float:
    """The largest finite total gradient norm of a run (NaN if none)."""
    g = floats(rec["grad_norm"])
    g = g[np.isfinite(g)]
    return float(g.max()) if g.size else float("nan")


def growth(rec: dict) -> float:
    """Largest finite gradient norm over the first step's."""
    g0 = num(rec["grad_norm"][0]) if rec["grad_norm"] else float("nan")
    return max_finite(rec) / g0 if math.isfinite(g0) and g0 > 0 else float("nan")


def max_update(rec: dict) -> float:
    """The largest relative update of the first Linear over the run (inf counts; NaN if none)."""
    u = floats(rec.get("update_first") or [])
    u = u[~np.isnan(u)]
    return float(u.max()) if u.size else float("nan")


def where(rec: dict) -> str | None:
    """Where a run first turned non-finite, as text (None if it never did)."""
    nf = rec["nonfinite"]
    if nf is None:
        return None
    if nf["layer"] is None:  # the loss overflowed although every layer's output was finite
        return f"step {nf['step']}, {nf['phase']} (every layer finite)"
    return f"step {nf['step']}, {nf['phase']} pass at layer {nf['layer']}/{rec['n_layers']}"
