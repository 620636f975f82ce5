"""Weight initialisation schemes.

The default, ``he_normal``, is He et al. 2015 (arXiv 1502.01852) Eq. 10: zero-mean
Gaussian weights with std sqrt(2 / fan_in), the forward-propagation case, which keeps
the variance of ReLU activations constant with depth.  He et al. 2016 initialise their
ResNets "as in [13]", i.e. this.  BN starts at weight 1, bias 0.  The final Linear layer
keeps PyTorch's default (uniform ±1/sqrt(fan_in)).
"""

from __future__ import annotations

import torch
from torch import nn

from reslab.errors import ReslabError

INIT_SCHEMES = {
    "he_normal": "He et al. 2015 Eq. 10: N(0, 2/fan_in) for convs (default)",
    "he_normal_fan_out": "N(0, 2/fan_out) for convs, as torchvision's ResNets",
    "orthogonal": "orthogonal convs with ReLU gain sqrt(2)",
    "pytorch": "PyTorch's default layer initialisation, untouched",
}


def check_scheme(scheme: str) -> None:
    if scheme not in INIT_SCHEMES:
        raise ReslabError(f"unknown init {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")


def init_weights(model: nn.Module, scheme: str = "he_normal") -> None:
    check_scheme(scheme)
    if scheme == "pytorch":
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if scheme == "he_normal":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif scheme == "he_normal_fan_out":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.orthogonal_(m.weight, gain=nn.init.calculate_gain("relu"))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- looks-linear (Balduzzi et al. 2017, §5)

def looks_linear_(linear: nn.Linear, mirrored: bool) -> nn.Linear:
    """Looks-linear initialisation of one Linear layer, in place (Balduzzi et al. 2017,
    arXiv 1702.08591, §5).

    ``mirrored=True``, for a layer fed by a CReLU ``[relu(z), relu(-z)]``: ``W = [W0, -W0]``
    with ``W0`` (out x in/2) orthogonal, so ``W [relu(z), relu(-z)] = W0 (relu(z) - relu(-z))
    = W0 z``: the layer and the CReLU before it compute the linear map ``W0``.
    ``mirrored=False`` (a layer fed by the raw input): ``W`` orthogonal.  Biases are zeroed.
    """
    with torch.no_grad():
        if mirrored:
            if linear.in_features % 2:
                raise ReslabError(f"looks-linear: a mirrored layer needs an even fan-in, got {linear.in_features}")
            w0 = torch.empty(linear.out_features, linear.in_features // 2, dtype=linear.weight.dtype)
            nn.init.orthogonal_(w0)
            linear.weight.copy_(torch.cat([w0, -w0], 1))
        else:
            nn.init.orthogonal_(linear.weight)
        if linear.bias is not None:
            linear.bias.zero_()
    return linear


def init_looks_linear(model: nn.Module) -> nn.Module:
    """Looks-linear init of every ``nn.Linear`` in ``model``: mirrored (``[W0, -W0]``) where
    the layer carries ``looks_linear_mirror = True`` (set by :func:`reslab.models.mlp.mlp`
    on the layers fed by a CReLU), orthogonal otherwise; BatchNorm at weight 1, bias 0.
    With CReLU activations the net then computes a linear function of its input at init
    (with BN: affine for fixed BN statistics), so its input-gradient cannot shatter."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            looks_linear_(m, mirrored=getattr(m, "looks_linear_mirror", False))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
