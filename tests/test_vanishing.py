"""The vanishing-gradient experiment: directions of the effect, results shape, figures, CLI.

Tiny configs only (a few seconds in all); no numbers from earlier runs are pinned."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.experiments import base, vanishing

TINY = dict(depths=(8,), width=32, n_images=256, probe_batch=128, batch=64, steps=3)


@pytest.fixture(scope="module")
def results():
    cfg = vanishing.config_for("quick", seeds=2, activations=("sigmoid", "relu+bn"), **TINY)
    return vanishing.run(cfg)


def test_sigmoid_derivative_is_at_most_a_quarter_at_zero():
    sig = vanishing.sigmoid_curve(vanishing.Config())
    assert sig["max_derivative"] == pytest.approx(0.25, abs=1e-12)
    assert sig["argmax"] == 0.0
    assert max(sig["derivative"]) <= 0.25
    assert sig["bound_product"]["10"] == pytest.approx(0.25 ** 10)


def test_sigmoid_first_layer_gradient_is_below_relu_bn(results):
    nets = results["data"]["nets"]
    for when in ("init", "trained"):
        sig = np.array(nets["sigmoid"]["8"][f"ratio_{when}"])
        bn = np.array(nets["relu+bn"]["8"][f"ratio_{when}"])
        assert np.all(np.isfinite(sig)) and np.all(np.isfinite(bn))
        assert sig.max() < bn.min(), when
        # the sigmoid's gradient shrinks from the output to the input layer
        norms = np.array(nets["sigmoid"]["8"][f"norms_{when}"][0])
        assert norms[0] < norms[-1]


def test_results_shape(results):
    assert set(results) >= {"experiment", "claim", "config", "conditions", "seconds", "verdict", "data"}
    assert results["experiment"] == "vanishing"
    assert set(results["verdict"]) == {"reproduced", "summary", "numbers"}
    rec = results["data"]["nets"]["sigmoid"]["8"]
    assert len(rec["ratio_init"]) == 2 and len(rec["norms_init"]) == 2
    assert len(rec["norms_init"][0]) == 8 + 1  # mlp(depth) has depth + 1 Linear layers
    stats = results["data"]["summary"]["relu+bn"]["8"]["init"]
    assert set(stats) >= {"mean", "std", "log10_mean", "log10_std", "n"} and stats["n"] == 2
    json.dumps(base._jsonable(results))  # JSON-serialisable


def test_plot_writes_pngs_from_saved_results(results, tmp_path):
    base.save_results(results, tmp_path)
    paths = vanishing.plot(base.load_results(tmp_path), tmp_path)
    assert len(paths) == 3
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_grad_norms_do_not_underflow_in_float32():
    import torch

    lin = torch.nn.Linear(4, 4)
    lin.weight.grad = torch.full((4, 4), 1e-30)
    assert vanishing.weight_grad_norms(torch.nn.Sequential(lin))[0] == pytest.approx(4e-30, rel=1e-5)


@pytest.mark.parametrize("bad", [dict(seeds=0), dict(depths=(0,)), dict(activations=("swish",)),
                                 dict(dataset="mnist"), dict(threshold=2.0), dict(no_such_setting=1),
                                 dict(batch=10**6)])
def test_config_rejects_bad_settings(bad):
    with pytest.raises(ReslabError):
        vanishing.config_for("quick", **bad)


def test_command_writes_results_and_returns_0(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(vanishing.SCALES, "quick", dict(seeds=1, dataset="synthetic", **TINY))
    assert main(["vanishing", "--out", str(tmp_path), "--quiet"]) == 0
    saved = json.loads((tmp_path / "vanishing" / "results.json").read_text())
    assert saved["config"]["seeds"] == 1 and saved["config"]["depths"] == [8]
    assert len(list((tmp_path / "vanishing").glob("*.png"))) == 3
    assert "[vanishing]" in capsys.readouterr().out


def test_command_bad_seeds_is_a_clean_error(tmp_path, capsys):
    assert main(["vanishing", "--out", str(tmp_path), "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "seeds" in err and "Traceback" not in err
    assert not (tmp_path / "vanishing").exists()
