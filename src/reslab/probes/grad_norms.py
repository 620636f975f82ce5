"""Gradient norms: per Linear/Conv layer (the vanishing/exploding experiments) and per module
or parameter for any model."""

from __future__ import annotations

from torch import nn

from reslab.errors import ReslabError

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """``{layer name: ||dL/dW||_2}`` for every Linear/Conv weight, in registration order
    (which is forward order for sequential nets such as :func:`reslab.models.mlp.mlp`).

    Call after ``loss.backward()``.  Layers whose weight has no gradient are left out;
    a non-finite norm is kept as ``inf``/``nan`` (that is the exploding-gradient signal).
    Only Linear/Conv weights count (the vanishing/exploding experiments rely on exactly
    that); :func:`param_grad_norms` covers every parameter of any model.
    """
    # float64: a vanished gradient (1e-24 per entry) squares to 0 in float32.
    norms = {name: m.weight.grad.detach().double().norm().item() for name, m in model.named_modules()
             if isinstance(m, WEIGHTED) and m.weight.grad is not None}
    if not norms:
        raise ReslabError("layer_grad_norms: no layer has a gradient; call loss.backward() first")
    return norms


def param_grad_norms(model: nn.Module, *, by: str = "module") -> dict[str, float]:
    """Gradient norms of *all* parameters (not only Linear/Conv weights): a transformer's
    ``self_attn.in_proj_weight``, BN/LayerNorm scales, biases, embeddings, raw
    ``nn.Parameter``\\ s all count.

    ``by="module"`` (default): one entry per module that owns parameters directly, named
    by the module (``""`` for parameters of the root), the norm over its own parameters
    ``sqrt(sum_p ||dL/dp||^2)``; ``by="parameter"``: one entry per parameter, named as in
    ``named_parameters()``.  Registration order; :func:`reslab.probes.health.probe` puts
    the groups in forward order.  Summed in float64 (:func:`layer_grad_norms`); a
    parameter without a gradient is left out; a non-finite norm is kept.
    """
    if by not in ("module", "parameter"):
        raise ReslabError(f"param_grad_norms: by must be 'module' or 'parameter', got {by!r}")
    norms: dict[str, float] = {}
    if by == "parameter":
        for name, p in model.named_parameters():
            if p.grad is not None:
                norms[name] = p.grad.detach().double().norm().item()
    else:
        for name, m in model.named_modules():
            sq = [p.grad.detach().double().square().sum() for p in m.parameters(recurse=False) if p.grad is not None]
            if sq:
                norms[name] = float(sum(sq).sqrt())
    if not norms:
        raise ReslabError("param_grad_norms: no parameter has a gradient; call loss.backward() first")
    return norms
