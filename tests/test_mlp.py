"""The scalar MLPs of Balduzzi et al.: layer counts, the residual formula, initialisation, errors."""

import io
import math

import pytest
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.models.mlp import MLP, MLPBlock, mlp
from reslab.probes import layer_grad_norms


def count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("depth", [1, 2, 24, 50])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("block", ["postact", "preact"])
def test_depth_counts_hidden_layers(depth, residual, block):
    # depth hidden layers: depth + 1 Linear, depth BN, depth ReLU; depth - 1 skips (module docstring)
    m = mlp(depth, residual=residual, block=block)
    assert count(m, nn.Linear) == depth + 1
    assert count(m, nn.BatchNorm1d) == depth
    assert count(m, nn.ReLU) == depth
    assert len(m.blocks) == depth - 1
    assert all(b.residual == residual for b in m.blocks)
    assert m(torch.randn(7, 1)).shape == (7, 1)


def test_paper_nets_and_shapes():
    one, plain24, res50 = mlp(1), mlp(24), mlp(50, residual=True)
    assert [l.weight.shape for l in one.modules() if isinstance(l, nn.Linear)] == [(200, 1), (1, 200)]
    assert count(plain24, nn.Linear) == 25 and count(res50, nn.Linear) == 51
    assert sum(isinstance(m, MLPBlock) and m.residual for m in res50.modules()) == 49
    # plain and residual twins: same parameter count
    assert sum(p.numel() for p in mlp(10).parameters()) == sum(p.numel() for p in mlp(10, residual=True).parameters())


def test_no_batchnorm_and_no_bias():
    m = mlp(5, batchnorm=False, bias=False)
    assert count(m, nn.BatchNorm1d) == 0
    assert all(l.bias is None for l in m.modules() if isinstance(l, nn.Linear))


def test_activation_and_features_for_images():
    m = mlp(3, width=16, activation="sigmoid", in_features=784, out_features=10)
    assert count(m, nn.Sigmoid) == 3 and count(m, nn.ReLU) == 0
    assert m(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    assert count(mlp(3, activation="tanh"), nn.Tanh) == 3


def test_residual_block_is_identity_with_zero_branch():
    torch.manual_seed(0)
    m = mlp(4, width=8, residual=True).eval()
    for block in m.blocks:
        nn.init.zeros_(block.branch.fc.weight)
        nn.init.zeros_(block.branch.fc.bias)
    x = torch.randn(5, 8)
    for block in m.blocks:
        assert torch.equal(block(x), x)


def test_residual_formula_with_beta():
    torch.manual_seed(0)
    m = mlp(3, width=8, residual=True, beta=0.1).eval()
    x = torch.randn(5, 8)
    block = m.blocks[0]
    assert torch.allclose(block(x), x + 0.1 * block.branch(x))


def test_same_seed_same_weights_for_plain_and_residual():
    torch.manual_seed(3)
    a = mlp(6, width=10)
    torch.manual_seed(3)
    b = mlp(6, width=10, residual=True, beta=0.1)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)


@pytest.mark.parametrize("block", ["postact", "preact"])
def test_set_skips_matches_a_fresh_resnet(block):
    x = torch.linspace(-2, 2, 32).unsqueeze(1)
    torch.manual_seed(5)
    switched = mlp(6, width=16, block=block).set_skips(True, 0.1)
    torch.manual_seed(5)
    fresh = mlp(6, width=16, residual=True, beta=0.1, block=block)
    assert torch.equal(switched(x), fresh(x))
    torch.manual_seed(5)
    assert torch.equal(switched.set_skips(False)(x), mlp(6, width=16, block=block)(x))
    with pytest.raises(ReslabError):
        switched.set_skips(False, 0.5)


def test_layer_order_pinned():
    # postact (default): stem Linear, then BN → ReLU; each branch Linear → BN → ReLU; head Linear
    m = mlp(3, residual=True)
    assert m.block == "postact"
    assert list(m._modules) == ["stem", "stem_act", "blocks", "head"]
    assert list(m.stem_act._modules) == ["bn", "act"]
    assert all(list(b.branch._modules) == ["fc", "bn", "act"] for b in m.blocks)
    assert list(m.head._modules) == ["fc"]
    # preact: each branch BN → ReLU → Linear; head BN → ReLU → Linear
    p = mlp(3, residual=True, block="preact")
    assert list(p._modules) == ["stem", "blocks", "head"]
    assert all(list(b.branch._modules) == ["bn", "act", "fc"] for b in p.blocks)
    assert list(p.head._modules) == ["bn", "act", "fc"]


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_postact_resnet_formula(beta):
    # a_1 = ReLU(BN(W_1 x)); a_k = a_{k-1} + beta * ReLU(BN(W_k a_{k-1})); out = W_head a_L
    torch.manual_seed(0)
    m = mlp(4, width=8, residual=True, beta=beta)
    x = torch.randn(16, 1)
    a = torch.relu(nn.functional.batch_norm(m.stem(x), None, None, training=True))
    for block in m.blocks:
        a = a + beta * torch.relu(nn.functional.batch_norm(block.branch.fc(a), None, None, training=True))
    assert torch.allclose(m(x), m.head.fc(a), atol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_preact_resnet_formula(beta):
    # z_1 = W_1 x; z_k = z_{k-1} + beta * W_k ReLU(BN(z_{k-1})); out = W_head ReLU(BN(z_L))
    torch.manual_seed(0)
    m = mlp(4, width=8, residual=True, beta=beta, block="preact")
    x = torch.randn(16, 1)
    z = m.stem(x)
    for block in m.blocks:
        z = z + beta * block.branch.fc(torch.relu(nn.functional.batch_norm(z, None, None, training=True)))
    out = m.head.fc(torch.relu(nn.functional.batch_norm(z, None, None, training=True)))
    assert torch.allclose(m(x), out, atol=1e-5)


def test_layouts_share_weights_and_plain_function():
    # same seed: the same Linear weights under the same names; the plain nets compute the same function
    x = torch.linspace(-2, 2, 32).unsqueeze(1)
    torch.manual_seed(7)
    post = mlp(5, width=16)
    torch.manual_seed(7)
    pre = mlp(5, width=16, block="preact")
    lin = lambda m: {n: l.weight for n, l in m.named_modules() if isinstance(l, nn.Linear)}  # noqa: E731
    assert list(lin(post)) == list(lin(pre)) == ["stem", "blocks.0.branch.fc", "blocks.1.branch.fc",
                                                 "blocks.2.branch.fc", "blocks.3.branch.fc", "head.fc"]
    assert all(torch.equal(lin(post)[k], lin(pre)[k]) for k in lin(post))
    assert torch.allclose(post(x), pre(x), atol=1e-6)
    # ... and the residual versions differ (the skip sits elsewhere)
    assert not torch.allclose(post.set_skips(True)(x), pre.set_skips(True)(x), atol=1e-3)


def test_he_initialisation():
    torch.manual_seed(0)
    m = mlp(2, width=400)
    w = m.blocks[0].branch.fc.weight
    assert abs(w.std().item() - math.sqrt(2 / 400)) < 0.05 * math.sqrt(2 / 400)
    assert abs(w.mean().item()) < 0.01
    b = m.blocks[0].branch.fc.bias
    assert b.abs().max() <= 400 ** -0.5 and b.std() > 0


def test_pickles():
    buf = io.BytesIO()
    torch.save(mlp(3, residual=True, beta=0.5), buf)
    buf.seek(0)
    m = torch.load(buf, weights_only=False)
    assert isinstance(m, MLP) and m.blocks[0].beta == 0.5


@pytest.mark.parametrize("kwargs", [
    dict(depth=0), dict(depth=2.5), dict(depth=True), dict(depth=3, width=0),
    dict(depth=3, activation="gelu"), dict(depth=3, residual=True, beta=0.0),
    dict(depth=3, residual=True, beta=float("nan")), dict(depth=3, beta=0.5),
    dict(depth=3, in_features=0), dict(depth=3, out_features=-1), dict(depth=3, block="pre"),
])
def test_invalid_args(kwargs):
    with pytest.raises(ReslabError) as err:
        mlp(**kwargs)
    assert "\n" not in str(err.value) and str(err.value).startswith("mlp:")


def test_layer_grad_norms_forward_order():
    torch.manual_seed(0)
    m = mlp(3, width=8)
    with pytest.raises(ReslabError):
        layer_grad_norms(m)
    m(torch.randn(16, 1)).pow(2).mean().backward()
    norms = layer_grad_norms(m)
    assert list(norms) == ["stem", "blocks.0.branch.fc", "blocks.1.branch.fc", "head.fc"]
    assert all(v > 0 and math.isfinite(v) for v in norms.values())
