"""Looks-linear initialisation (Balduzzi et al. 2017, §5): a deep plain CReLU net that is
linear at init, so its input-gradient is constant over the grid and cannot shatter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reslab import ReslabError
from reslab.models.init import init_looks_linear, looks_linear_
from reslab.models.mlp import CReLU, mlp
from reslab.probes import input_gradients, input_grid, lag1_autocorrelation, probe


pytestmark = pytest.mark.usefixtures("one_thread")


def _relative_spread(g: torch.Tensor) -> float:
    return float(g.std() / g.abs().mean())


@pytest.mark.parametrize("block", ["postact", "preact"])
@pytest.mark.parametrize("batchnorm", [True, False])
def test_looks_linear_deep_plain_net_is_linear_at_init(block, batchnorm):
    torch.manual_seed(0)
    x = input_grid(128)
    ll = mlp(30, 32, init="looks-linear", block=block, batchnorm=batchnorm)
    g = input_gradients(ll, x)
    assert _relative_spread(g) < 1e-4                      # df/dx the same at every grid point
    torch.manual_seed(0)
    he = mlp(30, 32, block=block, batchnorm=batchnorm)     # the default init: not linear
    assert _relative_spread(input_gradients(he, x)) > 1e-2


def test_looks_linear_input_gradient_is_not_shattered():
    torch.manual_seed(0)
    rep = probe(mlp(30, 32, init="looks-linear"), torch.randn(8, 1), points=128)
    assert rep.shattering["flag"] == "linear along the path"
    assert rep.shattering["neighbour_cosine"] > 0.999
    assert not any("shattered" in f for f in rep.findings)
    torch.manual_seed(0)
    he = probe(mlp(30, 32), torch.randn(8, 1), points=128)
    assert he.shattering["flag"] == "shattered"
    # a looks-linear net moved off its init is no longer linear but stays correlated
    torch.manual_seed(1)
    net = mlp(30, 32, init="looks-linear")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.add_(0.05 * torch.randn_like(m.weight) / m.in_features ** 0.5)
    g = input_gradients(net, input_grid(128))
    assert _relative_spread(g) > 1e-4 and lag1_autocorrelation(g) > lag1_autocorrelation(
        input_gradients(mlp(30, 32), input_grid(128)))


def test_mirrored_layer_after_crelu_computes_w0_z():
    torch.manual_seed(0)
    fc = looks_linear_(nn.Linear(8, 5), mirrored=True)
    k = fc.in_features // 2
    assert torch.equal(fc.weight[:, :k], -fc.weight[:, k:]) and torch.all(fc.bias == 0)
    w0 = fc.weight[:, :k]
    assert torch.allclose(w0.T @ w0, torch.eye(4), atol=1e-5)       # orthonormal columns (5 x 4)
    z = torch.randn(7, 4)
    assert torch.allclose(fc(CReLU()(z)), z @ w0.T, atol=1e-5)
    with pytest.raises(ReslabError, match="even fan-in"):
        looks_linear_(nn.Linear(5, 3), mirrored=True)


def test_looks_linear_structure_and_unchanged_defaults():
    net = mlp(4, 8, init="looks-linear")
    assert sum(isinstance(m, CReLU) for m in net.modules()) == 4
    fans = [m.in_features for m in net.modules() if isinstance(m, nn.Linear)]
    assert fans == [1, 16, 16, 16, 16]
    torch.manual_seed(3)
    a = mlp(4, 8)
    torch.manual_seed(3)
    b = mlp(4, 8, init="he")
    assert not any(isinstance(m, CReLU) for m in a.modules())
    assert [m.in_features for m in a.modules() if isinstance(m, nn.Linear)] == [1, 8, 8, 8, 8]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ReslabError, match="looks-linear"):
        mlp(4, 8, init="looks-linear", activation="sigmoid")
    with pytest.raises(ReslabError, match="unknown init"):
        mlp(4, 8, init="lsuv")
    assert init_looks_linear(nn.Sequential(nn.Linear(2, 2))) is not None


def test_cifar_plain_net_with_looks_linear_init_is_linear_along_a_path():
    """CReLU + mirrored convs: plain-20 computes a linear function at init (BN statistics of the
    path held fixed); its He-initialised twin does not."""
    import reslab
    from reslab.probes.shattering import grid_batch_stats

    def spread(model):
        torch.manual_seed(1)
        x0, d = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
        x = (x0 + torch.linspace(-2, 2, 32).view(-1, 1, 1, 1) * d).requires_grad_(True)
        with grid_batch_stats(model):
            (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        dd = (g * d).flatten(1).sum(1)
        return float(dd.std() / dd.abs().mean())

    torch.manual_seed(0)
    ll_net = reslab.create_model("plain20", width=0.25, init="looks-linear")
    he_net = reslab.create_model("plain20", width=0.25)
    assert spread(ll_net) < 1e-4 < 1e-2 < spread(he_net)
    n_ll, n_he = (sum(p.numel() for p in m.parameters()) for m in (ll_net, he_net))
    assert 1.8 * n_he < n_ll < 2.2 * n_he  # every conv after the stem reads the CReLU's doubled channels
    with pytest.raises(ReslabError, match="plain"):
        reslab.create_model("resnet20", init="looks-linear")
    from reslab.training.config import TrainConfig

    assert TrainConfig(model="plain20", init="looks-linear").init == "looks-linear"
