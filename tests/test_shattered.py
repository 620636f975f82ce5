"""Shattered gradients: the probes, the direction of the effects at tiny scale, results, figures, CLI."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.experiments import base, shattered, shattered_plots
from reslab.models.mlp import mlp
from reslab.probes import (autocorrelation, brown_noise, gradient_covariance, grid_batch_stats, input_gradients,
                           input_grid, lag1_autocorrelation, relu_activity, white_noise)

TINY = dict(seeds=3, depths=(2, 24, 50), max_lag=8, activity_depth=6, width=200, noise_walks=100)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    ctx = base.Context(tmp_path_factory.mktemp("shattered"))
    return shattered.run(shattered.config_for("quick", **TINY), ctx)


# ---------------------------------------------------------------- probes

def test_white_vs_brown_noise():
    gen = torch.Generator().manual_seed(0)
    white, brown = white_noise(8, 256, gen), brown_noise(8, 256, gen)
    assert lag1_autocorrelation(white).abs().mean() < 0.15
    assert lag1_autocorrelation(brown).mean() > 0.8
    acf = autocorrelation(white, 5)
    assert acf.shape == (8, 6) and torch.allclose(acf[:, 0], torch.ones(8))
    cov = gradient_covariance(white)
    assert cov.shape == (256, 256) and cov.diagonal().mean().item() == pytest.approx(1.0, abs=1e-4)


def test_input_grid():
    x = input_grid()
    assert x.shape == (256, 1) and x[0].item() == -2.0 and x[-1].item() == 2.0
    with pytest.raises(ReslabError):
        input_grid(1)


def test_input_gradients_hold_grid_statistics_fixed():
    torch.manual_seed(0)
    m = mlp(4, width=32, residual=True)
    x = input_grid(64)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    g = input_gradients(m, x)
    # the model is left as it was: train mode, running statistics untouched
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    # reference: an eval-mode copy whose running stats are the grid's (biased) batch stats
    ref = mlp(4, width=32, residual=True)
    ref.load_state_dict(before)
    inputs = {}
    hooks = [b.register_forward_pre_hook(lambda mod, inp: inputs.__setitem__(mod, inp[0].detach()))
             for b in ref.modules() if isinstance(b, nn.BatchNorm1d)]
    with torch.no_grad():
        train_out = ref(x)
    for h in hooks:
        h.remove()
    for bn, inp in inputs.items():
        bn.running_mean.copy_(inp.mean(0))
        bn.running_var.copy_(inp.var(0, unbiased=False))
    ref.eval()
    xr = x.clone().requires_grad_(True)
    out = ref(xr)
    assert torch.allclose(out, train_out, atol=1e-4)  # same outputs as train-mode BN on the grid
    (gr,) = torch.autograd.grad(out.sum(), xr)
    assert torch.allclose(g, gr.squeeze(1), rtol=1e-4, atol=1e-5)


def test_input_gradients_without_bn_match_autograd_per_sample():
    torch.manual_seed(0)
    m = mlp(3, width=16, batchnorm=False)
    x = input_grid(10)
    g = input_gradients(m, x)
    for i in (0, 5, 9):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(m(xi).sum(), xi)
        assert torch.allclose(g[i], gi.squeeze(), atol=1e-6)


def test_grid_batch_stats_restores_modes():
    m = mlp(2, width=4).eval()
    with grid_batch_stats(m):
        pass
    assert not m.training


def test_relu_activity_with_bn_near_half_and_quarter():
    torch.manual_seed(0)
    act = relu_activity(mlp(6), input_grid())
    assert len(act["active"]) == 6
    # layer 1 with BN is 2-valued on a scalar grid; check the later layers loosely
    assert all(0.35 < a < 0.65 for a in act["active"][1:])
    assert all(0.15 < c < 0.35 for c in act["coactive"][1:])


def test_relu_activity_coactive_formula():
    class Const(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()

        def forward(self, x):  # unit 0 always on, unit 1 never, unit 2 on for half
            return self.relu(torch.cat([torch.ones_like(x), -torch.ones_like(x), x], 1))

    act = relu_activity(Const(), torch.tensor([[-1.0], [-2.0], [1.0], [2.0]]))
    assert act["active"] == [pytest.approx(1.5 / 3)]
    assert act["coactive"] == [pytest.approx((1 + 0 + (2 * 1) / (4 * 3)) / 3)]


# ---------------------------------------------------------------- the experiment, tiny scale

def test_half_width():
    lags = torch.arange(10, dtype=torch.float64)
    acf = torch.stack([1 - lags / 8, torch.ones(10), (lags == 0).double()])
    hw = shattered.half_width(acf)
    assert hw.tolist() == pytest.approx([4.0, 9.0, 0.5])  # 1 - k/8 = 1/2 at k = 4; never: n - 1; white: 0.5
    gen = torch.Generator().manual_seed(0)
    white = autocorrelation(white_noise(8, 256, gen))
    brown = autocorrelation(brown_noise(8, 256, gen))
    assert shattered.half_width(white).mean() < 1.5 < 10 < shattered.half_width(brown).mean()


def test_direction_of_effects(results):
    data = results["data"]
    lag1, hw = data["lag1"], data["halfwidth"]
    plain24 = lag1["plain"]["24"]["mean"]
    res50 = lag1["resnet_beta=1"]["50"]["mean"]
    res50_small = lag1["resnet_beta=0.1"]["50"]["mean"]
    assert plain24 < res50 < res50_small
    assert lag1["plain"]["24"]["n"] == 3 and len(lag1["plain"]["24"]["values"]) == 3
    assert hw["plain"]["24"]["mean"] < hw["resnet_beta=1"]["50"]["mean"] < data["noise"]["brown noise"]["halfwidth"]["mean"]
    # the pre-activation layout, reported as context, keeps less correlation than the judged postact layout
    ctx = data["context"]
    assert ctx["block"] == "preact" and data["block"] == "postact"
    assert ctx["lag1"]["resnet_beta=1"]["50"]["mean"] < res50


def test_results_carry_config_verdict_and_traps(results):
    assert results["experiment"] == "shattered"
    assert results["config"]["bn"] == "grid-fixed" and results["config"]["seeds"] == 3
    assert results["config"]["block"] == "postact" and results["config"]["threads"] == 1
    v = results["verdict"]
    assert v["outcome"] in base.OUTCOMES and "24" in v["summary"] and "chosen by its outcome" in v["summary"]
    assert len(v["parts"]) == 5 and all(p["criterion"] and p["observed"] and p["source"] and p["quote"]
                                        for p in v["parts"])
    assert v["checks"] and all(c["passed"] for c in v["checks"])  # identities of the instrument
    names = " ".join(f["name"] for f in v["findings"])
    assert "block layout" in names and "zero biases" in names and "co-active" in names and v["unread"]
    traps = results["data"]["traps"]
    zero_bias = traps["24-layer plain, no BN, zero biases"]
    assert zero_bias["distinct_values"]["max"] <= 3  # positively homogeneous: two pieces
    act = results["data"]["activity"]
    assert set(act) == {"with BN", "without BN"} and len(act["with BN"]["active"]["mean"]) == 6
    assert len(act["with BN"]["per_seed"]["coactive"]) == 3
    assert results["data"]["noise"]["brown noise"]["lag1"]["n"] == 100  # the yardstick's walks, not the seeds
    assert any("BatchNorm" in n for n in results["data"]["notes"])


def test_results_json_round_trip_and_plot(results, tmp_path):
    base.save_results(results, tmp_path)
    loaded = base.load_results(tmp_path)
    assert loaded["verdict"]["outcome"] == results["verdict"]["outcome"]
    assert loaded["verdict"]["summary"] == results["verdict"]["summary"]
    assert loaded["config"] == json.loads(json.dumps(dataclasses.asdict(shattered.config_for("quick", **TINY))))
    cfg = shattered.Config(**loaded["config"])
    assert cfg == shattered.config_for("quick", **TINY)
    # the judgement can be redone from the saved file alone
    assert shattered.judge(cfg, loaded["data"])["summary"] == results["verdict"]["summary"]
    paths = shattered_plots.plot(loaded, tmp_path / "figs")
    assert len(paths) == 3
    for p in paths:
        assert p.suffix == ".png" and p.read_bytes()[:4] == b"\x89PNG"
    assert not hasattr(shattered, "plot")


def test_config_checks():
    cfg = shattered.config_for("full")
    assert cfg.seeds >= 20 and cfg.grid_points == 256 and (cfg.grid_lo, cfg.grid_hi) == (-2.0, 2.0)
    assert cfg.width == 200 and 24 in cfg.depths and 50 in cfg.depths
    assert cfg.block == "postact" and cfg.context_block == "preact" and cfg.threads == 1
    assert shattered.config_for("quick", seeds=5).seeds == 5
    assert shattered.config_for("quick", block="preact").context_block == "postact"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seeds = 3
    for bad in (dict(seeds=1), dict(depths=(0,)), dict(betas=(-1.0,)), dict(bn="train"), dict(max_lag=300),
                dict(nonsense=1), dict(block="post"), dict(brown_factor=0.5), dict(noise_walks=1),
                dict(threads=0)):
        with pytest.raises(ReslabError):
            shattered.config_for("quick", **bad)
    with pytest.raises(ReslabError):
        shattered.config_for("huge")


# ---------------------------------------------------------------- the command

def _parser():
    # only this command's parser: the test does not depend on the other commands
    import argparse

    from reslab.commands._experiment import add_experiment_command

    p = argparse.ArgumentParser()
    add_experiment_command(p.add_subparsers(dest="command"), "shattered")
    return p


def test_command_writes_results(tmp_path, monkeypatch, capsys):
    real = shattered.config_for
    monkeypatch.setattr(shattered, "config_for", lambda scale, seeds=None, **kw: real(scale, **{**TINY, **kw,
                                                                                              "seeds": 2}))
    args = _parser().parse_args(["shattered", "--out", str(tmp_path), "--quiet"])
    assert args.func(args) == 0
    out = tmp_path / "shattered"
    assert (out / "results.json").is_file() and len(list(out.glob("*.png"))) == 3
    assert "[shattered]" in capsys.readouterr().out


def test_command_bad_input(tmp_path):
    args = _parser().parse_args(["shattered", "--out", str(tmp_path), "--seeds", "1"])
    with pytest.raises(ReslabError, match="seeds must be an integer >= 2"):
        args.func(args)
    assert not (tmp_path / "shattered").exists()
    with pytest.raises(SystemExit) as err:
        _parser().parse_args(["shattered", "--scale", "huge"])
    assert err.value.code == 2
