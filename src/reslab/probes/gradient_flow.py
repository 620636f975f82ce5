"""Part 1 of :func:`reslab.probes.health.probe`: the gradient norm of every module's
parameters and of every module's output after one training-mode backward, in forward order,
each series' first/last ratio flagged vanishing or exploding."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.probes._forward import _first_tensor, _forward, _loss
from reslab.probes.grad_norms import param_grad_norms

VANISH_BELOW = 1e-2     # first/last gradient ratio below this: vanishing
EXPLODE_ABOVE = 1e2     # first/last gradient ratio above this: exploding
ROOT = "(model)"        # the name shown for parameters owned by the model itself


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
