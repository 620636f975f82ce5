"""Counts, shapes and structure of the ResNets and their plain twins (pins the paper's numbers)."""

import io

import pytest
import torch
from torch import nn

import reslab
from reslab.models import create_model, weighted_layers
from reslab.models.blocks import Block, ZeroPadShortcut
from reslab.models.summary import summarize

# He et al. §4.2 (10 classes, 3 input channels, option A) and the reference ImageNet implementation.
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}
IMAGENET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# Paper Table 1, multiply-adds at 224x224, in units of 1e9.
IMAGENET_GMACS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def meta_model(name, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


@pytest.mark.parametrize("depth", CIFAR_PARAMS)
def test_cifar_param_counts_and_plain_twin(depth):
    res, plain = meta_model(f"resnet{depth}"), meta_model(f"plain{depth}")
    assert n_params(res) == CIFAR_PARAMS[depth]
    assert n_params(plain) == CIFAR_PARAMS[depth]
    assert weighted_layers(res) == weighted_layers(plain) == depth
    # Same layers, same shapes: the twin differs only by the missing skips.
    assert {k: v.shape for k, v in res.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    blocks = [m for m in plain.modules() if isinstance(m, Block)]
    assert len(blocks) == 3 * ((depth - 2) // 6) and all(b.shortcut is None for b in blocks)


@pytest.mark.parametrize("depth", IMAGENET_PARAMS)
def test_imagenet_param_counts_and_flops(depth):
    model = meta_model(f"resnet{depth}")
    assert n_params(model) == IMAGENET_PARAMS[depth]
    assert weighted_layers(model) == depth
    s = summarize(f"resnet{depth}")
    assert s.macs / 1e9 == pytest.approx(IMAGENET_GMACS[depth], rel=0.10)


@pytest.mark.parametrize("depth", [18, 34])
def test_imagenet_plain_twins(depth):
    res, plain = meta_model(f"resnet{depth}"), meta_model(f"plain{depth}")
    assert weighted_layers(plain) == depth
    # The plain twin lacks exactly the three projection shortcuts (option B).
    res_keys = set(res.state_dict())
    assert set(plain.state_dict()) == {k for k in res_keys if ".shortcut." not in k}
    assert n_params(plain) < n_params(res)


def test_cifar_stage_shapes():
    s = summarize("resnet20")
    assert dict(s.stage_shapes) == {"stem": (16, 32, 32), "stage1": (16, 32, 32), "stage2": (32, 16, 16),
                                    "stage3": (64, 8, 8), "head": (10,)}


def test_imagenet_stage_shapes():
    shapes = dict(summarize("resnet50").stage_shapes)
    assert shapes["stem"] == (64, 56, 56)
    assert [shapes[f"stage{i}"][1:] for i in range(1, 5)] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert [shapes[f"stage{i}"][0] for i in range(1, 5)] == [256, 512, 1024, 2048]


def test_bottleneck_strides_in_3x3():
    model = meta_model("resnet50")
    first = model.stage2[0].branch
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2) and first.conv3.stride == (1, 1)


def test_option_a_subsamples_and_zero_pads():
    sc = ZeroPadShortcut(2, 4, stride=2)
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    y = sc(x)
    assert y.shape == (1, 4, 2, 2)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 2:]) == 0
    assert sum(p.numel() for p in sc.parameters()) == 0


def test_shortcut_options_b_and_c_add_projections():
    a, b, c = (meta_model("resnet20", shortcut=o) for o in "ABC")
    # B projects at the two places the shape changes; C in all 9 blocks.
    n_proj = lambda m: sum(1 for name, _ in m.named_modules() if name.endswith("shortcut.conv"))  # noqa: E731
    assert (n_proj(a), n_proj(b), n_proj(c)) == (0, 2, 9)
    assert n_params(a) < n_params(b) < n_params(c)


@pytest.mark.parametrize("name,shape", [("resnet20", (2, 3, 32, 32)), ("plain20", (2, 1, 28, 28)),
                                        ("resnet18", (2, 3, 64, 64)), ("plain18", (2, 3, 64, 64))])
def test_forward_backward(name, shape):
    torch.manual_seed(0)
    model = create_model(name, in_channels=shape[1], num_classes=7)
    out = model(torch.randn(shape))
    assert out.shape == (2, 7)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.stem.conv.weight.grad.abs().sum() > 0


def test_residual_block_adds_before_final_relu():
    model = create_model("resnet20")
    block = model.stage1[0].eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        expected = torch.relu(block.branch(x) + x)
        assert torch.allclose(block(x), expected)


def test_zero_init_residual_makes_blocks_identity():
    model = create_model("resnet20", zero_init_residual=True).eval()
    block = model.stage1[1]
    x = torch.rand(1, 16, 8, 8)  # non-negative, as after a ReLU
    with torch.no_grad():
        assert torch.allclose(block(x), x)


def test_width_and_channels_options():
    model = create_model("resnet20", width=2, in_channels=1, num_classes=3)
    assert model.stem.conv.weight.shape == (32, 1, 3, 3)
    assert model.head.fc.weight.shape == (3, 128)


def test_he_normal_default_init_std():
    torch.manual_seed(0)
    conv = create_model("resnet56").stage3[1].branch.conv1
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet18"])
def test_whole_model_pickles(name):
    model = create_model(name)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)  # our own freshly saved object in a test
    x = torch.randn(2, 3, 32, 32)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize("name,match", [
    ("resnet57", "6n\\+2"), ("cifar-resnet21", "6n\\+2"), ("alexnet", "valid: resnet20"),
])
def test_registry_errors(name, match):
    with pytest.raises(ValueError, match=match):
        create_model(name)


def test_registry_option_errors():
    with pytest.raises(reslab.ReslabError, match="unknown option"):
        create_model("resnet20", colour="red")
    with pytest.raises(reslab.ReslabError, match="shortcut"):
        create_model("resnet20", shortcut="D")
    with pytest.raises(reslab.ReslabError, match="plain"):
        create_model("plain20", zero_init_residual=True)
    with pytest.raises(reslab.ReslabError, match="init"):
        create_model("resnet20", init="magic")


def test_any_6n_plus_2_depth():
    assert weighted_layers(meta_model("cifar-resnet8")) == 8
    assert weighted_layers(meta_model("cifar-plain14")) == 14


# --------------------------------------------------------------------------- specs


def test_every_registered_name_has_a_spec_that_builds_it():
    from reslab.models import MODELS, spec

    for name in reslab.list_models():
        s = spec(name)
        assert s is MODELS[name] and s.name == name
        assert s.family in ("cifar", "imagenet", "mlp")
        assert s.bankable == (s.family != "imagenet")
        if s.family == "mlp":
            assert s.input_shape == (1,) and s.depth == 0 and "depth" in s.kwargs
            continue
        with torch.device("meta"):
            net = s.build()
        assert weighted_layers(net) == s.depth and net.residual == s.residual
        assert s.input_shape == ((3, 32, 32) if s.family == "cifar" else (3, 224, 224))
        assert set(s.kwargs) >= {"num_classes", "in_channels", "width", "shortcut", "init"}
        if s.residual:  # the twin: the same net without skips
            twin = spec(s.plain_twin)
            assert not twin.residual and twin.depth == s.depth and twin.family == s.family
        else:
            assert s.plain_twin is None


def test_spec_resolves_any_6n_plus_2_and_refuses_the_rest():
    from reslab.models import spec

    s = spec("cifar-resnet26")
    assert (s.family, s.depth, s.residual, s.plain_twin, s.bankable) == ("cifar", 26, True, "cifar-plain26", True)
    assert spec("cifar-plain26").residual is False
    for bad, match in (("cifar-resnet27", "6n\\+2"), ("resnet57", "paper depth"), ("vgg16", "unknown model"),
                       ("cifar-resnet" + "8" * 5000, "deeper than")):
        with pytest.raises(reslab.ReslabError, match=match):
            spec(bad)


def test_spec_is_frozen_and_checks_options():
    import dataclasses

    from reslab.models import spec

    s = spec("resnet20")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.depth = 3
    with pytest.raises(reslab.ReslabError, match="unknown option.*colour.*valid: shortcut"):
        s.build(colour="red")


def test_a_new_family_is_one_registration(monkeypatch):
    """A model registered as a spec is listed, built and checked like the others."""
    from reslab.models import MODELS, ModelSpec

    tiny = ModelSpec(name="tiny", family="mlp", input_shape=(4,), depth=1, residual=False, plain_twin=None,
                     kwargs=("out",), bankable=True, constructor=lambda out=2: nn.Linear(4, out))
    monkeypatch.setitem(MODELS, "tiny", tiny)
    assert "tiny" in reslab.list_models()
    assert create_model("tiny", out=3).out_features == 3
    assert reslab.create_model("tiny").out_features == 2
    with pytest.raises(reslab.ReslabError, match="unknown option"):
        create_model("tiny", width=2)


def test_models_create_model_refuses_weights_and_points_to_reslab():
    with pytest.raises(reslab.ReslabError, match="reslab.create_model"):
        create_model("resnet20", pretrained=True)
