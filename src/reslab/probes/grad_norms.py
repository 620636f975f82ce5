"""Per-layer gradient norms, for the vanishing/exploding-gradient experiments."""

from __future__ import annotations

from torch import nn

from reslab.errors import ReslabError

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """``{layer name: ||dL/dW||_2}`` for every Linear/Conv weight, in registration order
    (which is forward order for sequential nets such as :func:`reslab.models.mlp.mlp`).

    Call after ``loss.backward()``.  Layers whose weight has no gradient are left out;
    a non-finite norm is kept as ``inf``/``nan`` (that is the exploding-gradient signal).
    """
    # float64: a vanished gradient (1e-24 per entry) squares to 0 in float32.
    norms = {name: m.weight.grad.detach().double().norm().item() for name, m in model.named_modules()
             if isinstance(m, WEIGHTED) and m.weight.grad is not None}
    if not norms:
        raise ReslabError("layer_grad_norms: no layer has a gradient; call loss.backward() first")
    return norms
