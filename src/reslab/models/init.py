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
    "looks-linear": "Balduzzi et al. 2017 §5, plain CIFAR nets: CReLU activations, mirrored orthogonal "
                    "weights [W0, -W0]; linear at init",
}


def check_scheme(scheme: str) -> None:
    if scheme not in INIT_SCHEMES:
        raise ReslabError(f"unknown init {scheme!r}; valid: {', '.join(INIT_SCHEMES)}")


def init_weights(model: nn.Module, scheme: str = "he_normal") -> None:
    check_scheme(scheme)
    if scheme == "pytorch":
        return
    if scheme == "looks-linear":
        init_looks_linear(model)
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

def looks_linear_(linear: nn.Linear | nn.Conv2d, mirrored: bool) -> nn.Module:
    """Looks-linear initialisation of one Linear or Conv2d layer, in place (Balduzzi et al. 2017,
    arXiv 1702.08591, §5).

    ``mirrored=True``, for a layer fed by a CReLU ``[relu(z), relu(-z)]``: ``W = [W0, -W0]``
    with ``W0`` (out x in/2) orthogonal, so ``W [relu(z), relu(-z)] = W0 (relu(z) - relu(-z))
    = W0 z``: the layer and the CReLU before it compute the linear map ``W0``.
    ``mirrored=False`` (a layer fed by the raw input): ``W`` orthogonal.  Biases are zeroed.
    A convolution is treated the same way along its input channels; ``W0``'s kernel is
    orthogonal as a matrix of shape (out, in/2 x kh x kw), PyTorch's ``orthogonal_`` convention.
    """
    with torch.no_grad():
        fan_in = linear.weight.shape[1]
        if mirrored:
            if fan_in % 2:
                raise ReslabError(f"looks-linear: a mirrored layer needs an even fan-in, got {fan_in}")
            w0 = torch.empty(linear.weight.shape[0], fan_in // 2, *linear.weight.shape[2:], dtype=linear.weight.dtype)
            nn.init.orthogonal_(w0)
            linear.weight.copy_(torch.cat([w0, -w0], 1))
        else:
            nn.init.orthogonal_(linear.weight)
        if linear.bias is not None:
            linear.bias.zero_()
    return linear


def init_looks_linear(model: nn.Module) -> nn.Module:
    """Looks-linear init of every ``nn.Linear`` and ``nn.Conv2d`` in ``model``: mirrored (``[W0, -W0]``) where
    the layer carries ``looks_linear_mirror = True`` (set by :func:`reslab.models.mlp.mlp` and
    :func:`reslab.models.resnet.cifar_resnet` on the layers fed by a CReLU), orthogonal otherwise; BatchNorm at weight 1, bias 0.
    With CReLU activations the net then computes a linear function of its input at init
    (with BN: affine for fixed BN statistics), so its input-gradient cannot shatter."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            looks_linear_(m, mirrored=getattr(m, "looks_linear_mirror", False))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
