"""The gradient-health probe: probes that accept any model, planted problems caught, a
healthy ResNet passed, a non-reslab model probed, the `reslab probe` command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from reslab import ReslabError
from reslab.cli import main
from reslab.models import create_model
from reslab.models.mlp import mlp
from reslab.probes import (BATCHNORMS, activation_activity, grid_batch_stats, input_gradients, input_grid,
                           layer_grad_norms, param_grad_norms, probe, relu_activity)


pytestmark = pytest.mark.usefixtures("one_thread")


def _encoder(activation=None):
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, activation=activation or nn.GELU())


def _gain(net: nn.Module, gain: float) -> nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(gain)
    return net


# ---------------------------------------------------------------- A: probes for any model

def test_param_grad_norms_cover_every_parameter():
    enc = _encoder()
    enc(torch.randn(3, 4, 16)).square().mean().backward()
    assert "self_attn" not in layer_grad_norms(enc)          # Linear/Conv weights only, as before
    by_param = param_grad_norms(enc, by="parameter")
    assert "self_attn.in_proj_weight" in by_param and "norm1.weight" in by_param
    assert set(by_param) == {n for n, p in enc.named_parameters() if p.grad is not None}
    by_module = param_grad_norms(enc)
    assert "self_attn" in by_module
    w, b = by_param["self_attn.in_proj_weight"], by_param["self_attn.in_proj_bias"]
    assert by_module["self_attn"] == pytest.approx((w ** 2 + b ** 2) ** 0.5)
    with pytest.raises(ReslabError):
        param_grad_norms(enc, by="layer")


def test_input_gradients_of_a_classifier_logit_or_loss():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 5))
    x = torch.randn(6, 3)
    with pytest.raises(ReslabError, match="one scalar output per sample"):
        input_gradients(net, x)
    g = input_gradients(net, x, output=2)
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(net(xr)[:, 2].sum(), xr)
    assert torch.allclose(g, ref, atol=1e-6)
    y = torch.randint(5, (6,))
    gl = input_gradients(net, x, output=lambda out: nn.functional.cross_entropy(out, y, reduction="sum"))
    (refl,) = torch.autograd.grad(nn.functional.cross_entropy(net(xr), y, reduction="sum"), xr)
    assert torch.allclose(gl, refl, atol=1e-6)
    with pytest.raises(ReslabError, match="out of range"):
        input_gradients(net, x, output=5)
    with pytest.raises(ReslabError, match="floating-point"):
        input_gradients(net, torch.ones(6, 3, dtype=torch.long))


def test_activation_activity_sees_gelu_and_defines_active():
    net = nn.Sequential(nn.Linear(1, 4), nn.GELU(), nn.Linear(4, 1), nn.Sigmoid())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
    x = torch.tensor([[-3.0], [-1.0], [1.0], [3.0]])
    with pytest.raises(ReslabError, match="nn.ReLU"):
        relu_activity(net, x)
    act = activation_activity(net, x, types=(nn.GELU,))
    assert act["types"] == ["GELU"] and act["names"] == ["1"]
    assert act["active"] == [0.5]                       # z > 0 on 2 of 4 inputs
    assert act["coactive"][0] == pytest.approx(2 * 1 / (4 * 3))
    # derivative mode: a saturated sigmoid lets no gradient through
    sat = nn.Sequential(nn.Linear(1, 4), nn.Sigmoid())
    with torch.no_grad():
        sat[0].weight.fill_(10.0)
        sat[0].bias.zero_()
    live = activation_activity(sat, x / 30, mode="derivative")["active"][0]
    dead = activation_activity(sat, x, mode="derivative")["active"][0]
    assert live == 1.0 and dead == 0.0
    with pytest.raises(ReslabError, match="no activation modules"):
        activation_activity(nn.Linear(1, 1), x)


def test_syncbatchnorm_counts_and_works_without_distributed():
    assert nn.SyncBatchNorm in BATCHNORMS
    torch.manual_seed(0)
    plain = mlp(6, 16)
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(mlp(6, 16))
    sync.load_state_dict(plain.state_dict())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in sync.modules())
    x = input_grid(32)
    assert torch.allclose(input_gradients(sync, x), input_gradients(plain, x), atol=1e-5)
    with grid_batch_stats(sync):
        pass
    assert [r["type"] for r in probe(sync, torch.randn(8, 1), points=32).batchnorm] == ["SyncBatchNorm"] * 6


# ---------------------------------------------------------------- B: planted problems, healthy nets

def test_sigmoid_stack_reads_as_vanishing():
    torch.manual_seed(0)
    rep = probe(mlp(20, 32, activation="sigmoid", batchnorm=False), torch.randn(16, 1), points=64)
    assert rep.gradients["flag"] == "vanishing"
    assert rep.gradients["params"]["first_over_last"] < 1e-2
    assert any("vanishing" in f for f in rep.findings)


def test_gain3_relu_stack_reads_as_exploding():
    torch.manual_seed(0)
    # He init is std sqrt(2/fan_in); x 3/sqrt(2) makes it std 3/sqrt(fan_in): gain 3, no BN
    rep = probe(_gain(mlp(20, 32, batchnorm=False), 3 / 2 ** 0.5), torch.randn(16, 1), points=64)
    assert "exploding" in rep.gradients["flag"]
    assert rep.gradients["outputs"]["first_over_last"] > 1e2
    # the same net at He init (gain sqrt 2): not exploding
    torch.manual_seed(0)
    assert "exploding" not in probe(mlp(20, 32, batchnorm=False), torch.randn(16, 1), points=64).gradients["flag"]


def test_deep_plain_bn_net_reads_as_shattered_its_resnet_not():
    torch.manual_seed(0)
    net = mlp(30, 64)
    rep = probe(net, torch.randn(16, 1), points=128)
    assert rep.shattering["flag"] == "shattered"
    assert abs(rep.shattering["lag1"]) < 0.3                   # near white noise's 0
    net.set_skips(True)                                         # same weights, skips on
    res = probe(net, torch.randn(16, 1), points=128)
    assert res.shattering["flag"] == "ok" and res.shattering["lag1"] > 0.5


def test_healthy_cifar_resnet_passes_every_probe():
    torch.manual_seed(0)
    rep = probe(create_model("resnet20"), torch.randn(4, 3, 32, 32), points=48, name="resnet20")
    assert rep.gradients["flag"] == "ok", rep.findings
    assert rep.shattering["flag"] == "ok", rep.findings
    assert rep.healthy and rep.activity is not None and len(rep.batchnorm) == 19
    assert rep.shattering["of"].startswith("logit")


def test_probe_a_non_reslab_transformer_layer():
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    enc.eval()
    rep = probe(enc, torch.randn(4, 5, 16), points=32)
    assert "self_attn.in_proj_weight" in rep.gradients["params"]["by_parameter"]
    assert list(rep.gradients["params"]["norms"])[0] == "self_attn"      # forward order
    assert "self_attn.out_proj" in rep.gradients["params"]["norms"]      # used functionally, still counted
    assert rep.activity["types"] == ["GELU"]
    assert rep.output_shape == [4, 5, 16]
    # the model is left as it was
    assert not enc.training and all(p.grad is None for p in enc.parameters())
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


def test_probe_restores_bn_running_stats():
    net = mlp(4, 8)
    net.train()
    probe(net, torch.randn(8, 1) * 5 + 3, points=16)
    assert net.training
    bn = net.stem_act.bn
    assert torch.equal(bn.running_mean, torch.zeros(8)) and torch.equal(bn.running_var, torch.ones(8))


class _TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x), x


class _Ignores(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))

    def forward(self, x):
        return self.w.expand(x.shape[0], 2) * 1.0


def test_models_the_probe_cannot_handle_are_one_line_errors():
    with pytest.raises(ReslabError, match="floating-point inputs"):
        probe(nn.Embedding(10, 4), torch.randint(10, (4, 3)))
    with pytest.raises(ReslabError, match="not a tensor"):
        probe(_TupleOut(), torch.randn(4, 3))
    with pytest.raises(ReslabError, match="does not depend"):
        probe(_Ignores(), torch.randn(4, 3))
    with pytest.raises(ReslabError, match="failed on inputs"):
        probe(nn.Linear(3, 2), torch.randn(4, 5))


# ---------------------------------------------------------------- the command

def test_cli_probe_registered_model_writes_report(tmp_path, capsys):
    out = tmp_path / "p"
    rc = main(["probe", "resnet20", "--input-size", "3", "16", "16", "--batch", "4", "--points", "64",
               "--out", str(out), "--no-figure"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["gradients"]["flag"] == "ok" and res["model"] == "resnet20"
    assert "Flags" in (out / "report.md").read_text()
    assert "<table>" in (out / "report.html").read_text()
    assert "no problem flagged" in capsys.readouterr().out


def test_cli_probe_user_factory_and_errors(tmp_path, capsys):
    f = tmp_path / "mynet.py"
    f.write_text("import torch.nn as nn\n"
                 "def build():\n"
                 "    return nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(8, 8), nn.Sigmoid())],"
                 " nn.Linear(8, 3))\n"
                 "def tokens():\n    return nn.Embedding(10, 4)\n"
                 "def notmodel():\n    return 3\n")
    rc = main(["probe", f"{f}:build", "--input-size", "8", "--points", "32", "--out", str(tmp_path / "o")])
    assert rc == 0
    assert "vanishing" in capsys.readouterr().out
    assert (tmp_path / "o" / "probe.png").is_file()
    for spec, extra, msg in ((f"{f}:build", [], "needs --input-size"),
                             (f"{f}:tokens", ["--input-size", "3"], "failed on inputs"),
                             (f"{f}:notmodel", ["--input-size", "3"], "not a torch.nn.Module"),
                             (f"{f}:missing", ["--input-size", "3"], "no callable"),
                             ("resnet20", ["--batch", "1"], "--batch")):
        rc = main(["probe", spec, *extra, "--out", str(tmp_path / "e")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, (spec, err)


def test_relu_activity_is_activation_activity_on_relus():
    torch.manual_seed(0)
    net, x = mlp(6, 16), input_grid(64)
    old = relu_activity(net, x)
    new = activation_activity(net, x, types=(nn.ReLU,))
    assert new["active"] == pytest.approx(old["active"]) and new["coactive"] == pytest.approx(old["coactive"])
    assert new["names"][0] == "stem_act.act"


def test_cli_probe_and_plot_a_real_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "resnet20", "--dataset", "synthetic", "--iterations", "2", "--out", str(run),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["probe", str(run), "--batch", "4", "--points", "32", "--out", str(tmp_path / "p"),
                 "--no-figure"]) == 0
    res = json.loads((tmp_path / "p" / "results.json").read_text())
    assert res["output_shape"][1] == 10 and res["gradients"]["params"]["first"] == "stem.conv"
    assert main(["plot", str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()


def _fashion_mnist_weights(tmp_path):
    """A reslab .safetensors of a Fashion-MNIST ResNet-20 (1 x 28 x 28 inputs), as the trainer writes it."""
    from reslab.training import TrainConfig
    from reslab.training.checkpoint import export_safetensors

    cfg = TrainConfig(model="resnet20", dataset="fashion-mnist")
    net = create_model("resnet20", num_classes=10, in_channels=1)
    return export_safetensors(net, tmp_path / "fm.safetensors", metadata={"config": json.dumps(cfg.to_dict())})


def test_cli_probe_takes_the_input_shape_from_the_runs_dataset(tmp_path, capsys):
    weights = _fashion_mnist_weights(tmp_path)
    assert main(["probe", str(weights), "--batch", "4", "--points", "16", "--out", str(tmp_path / "p"),
                 "--no-figure"]) == 0
    assert json.loads((tmp_path / "p" / "results.json").read_text())["input_shape"] == [4, 1, 28, 28]


def test_cli_probe_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    args = ["probe", "mlp", "--depth", "2", "--batch", "4", "--points", "16", "--no-figure", "--out"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text("my own results")
    assert main([*args, str(mine)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not written by `reslab probe`" in err and "--overwrite" in err
    assert (mine / "results.json").read_text() == "my own results"
    probed = tmp_path / "probed"
    assert main([*args, str(probed)]) == 0 and main([*args, str(probed)]) == 0  # its own output: rewritten
    assert main([*args, str(mine), "--overwrite"]) == 0
    assert json.loads((mine / "results.json").read_text())["model"] == "mlp"


@pytest.mark.parametrize("where", ["import", "call"])
def test_cli_probe_factory_that_calls_sys_exit_is_an_error(tmp_path, capsys, where):
    f = tmp_path / "quitter.py"
    body = "import sys\nsys.exit(0)\n" if where == "import" else "import sys\ndef build():\n    sys.exit(0)\n"
    f.write_text(body + ("def build():\n    pass\n" if where == "import" else ""))
    assert main(["probe", f"{f}:build", "--input-size", "4", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "sys.exit(0)" in err
    assert not (tmp_path / "o" / "report.html").exists()
