"""Weight initialisation schemes.

The default, ``he_normal``, is He et al. 2015 (arXiv 1502.01852) Eq. 10: zero-mean
Gaussian weights with std sqrt(2 / fan_in), the forward-propagation case, which keeps
the variance of ReLU activations constant with depth.  He et al. 2016 initialise their
ResNets "as in [13]", i.e. this.  BN starts at weight 1, bias 0.  The final Linear layer
keeps PyTorch's default (uniform ±1/sqrt(fan_in)).
"""

from __future__ import annotations

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
