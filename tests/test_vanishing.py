"""The vanishing-gradient experiment: directions of the effect, the bound, judge logic on
hand-built numbers, results shape, figures, CLI.

Tiny configs only (a few seconds in all); no numbers from earlier runs are pinned."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reslab.cli import main
from reslab import render
from reslab.errors import ReslabError
from reslab.experiments import base, fcnets, run_and_save, vanishing, vanishing_plots, vanishing_probe

TINY = dict(depths=(8,), width=32, n_images=256, probe_batch=128, batch=64, steps=3)
ACTS = ("sigmoid", "relu", "relu+bn")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cfg = vanishing.config_for("quick", seeds=2, activations=ACTS, **TINY)
    with base.torch_threads(cfg.threads):
        return vanishing.run(cfg, base.Context(tmp_path_factory.mktemp("vanishing")))


def test_sigmoid_derivative_is_at_most_a_quarter_at_zero():
    sig = vanishing_probe.sigmoid_curve(vanishing.Config())
    assert sig["max_derivative"] == pytest.approx(0.25, abs=1e-12)
    assert sig["argmax"] == 0.0
    assert max(sig["derivative"]) <= 0.25
    assert sig["sigma_bound"]["10"] == pytest.approx(0.25 ** 10)


def test_sigmoid_first_layer_gradient_is_below_relu_bn(results):
    nets = results["data"]["nets"]
    for when in ("init", "trained"):
        sig = np.array(nets["sigmoid"]["8"][f"ratio_{when}"])
        bn = np.array(nets["relu+bn"]["8"][f"ratio_{when}"])
        assert np.all(np.isfinite(sig)) and np.all(np.isfinite(bn))
        assert sig.max() < bn.min(), when
        norms = np.array(nets["sigmoid"]["8"][f"norms_{when}"][0])
        assert norms[0] < norms[-1]  # the sigmoid's gradient shrinks from the output to the input layer


def test_backward_factors_obey_the_bound_with_weights_but_not_sigma_alone(results):
    rec = results["data"]["nets"]["sigmoid"]["8"]
    for act, w, ds in zip(rec["act_init"], rec["wnorm_init"], rec["dsigma_init"]):
        f = vanishing_probe.factors(act)
        assert len(f) == len(w) == len(ds) == 8
        assert np.all(f <= 0.25 * np.array(w) * (1 + 1e-9))  # the bound with the weights holds
        assert 0 < max(ds) <= 0.25
        # He init gives ‖W‖₂ > 1, so 0.25^L alone is below the measured product
        assert vanishing_probe.ratio(act) > 0.25 ** 8
        assert vanishing_probe.ratio(act) <= vanishing_probe.weight_bound(w, "sigmoid")


def test_the_ten_layer_example_is_always_measured(results):
    ex = results["data"]["example"]
    assert ex["layers"] == 10 and ex["factors"] == 9 and ex["sigma_bound"] == pytest.approx(0.25 ** 9)
    assert len(ex["ratio"]) == 2
    assert all(0 < r <= b for r, b in zip(ex["ratio"], ex["weight_bound"]))


def test_results_shape_and_parts(results):
    assert set(results) >= {"experiment", "claim", "config", "conditions", "seconds", "verdict", "data", "scope"}
    assert results["experiment"] == "vanishing"
    v = results["verdict"]
    assert v["outcome"] in base.OUTCOMES and len(v["parts"]) == 4
    assert len(v["checks"]) == 2 and len(v["findings"]) == 2
    assert all(p["source"] and p["quote"] and p["criterion"] for p in v["parts"])
    rec = results["data"]["nets"]["sigmoid"]["8"]
    assert len(rec["norms_init"][0]) == len(rec["act_init"][0]) == 8 + 1  # depth + 1 Linear layers
    json.dumps(render.jsonable(results))


def test_plot_writes_pngs_from_saved_results(results, tmp_path):
    base.save_results(results, tmp_path)
    paths = vanishing_plots.plot(base.load_results(tmp_path), tmp_path)
    assert len(paths) == 5
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_grad_norms_do_not_underflow_in_float32():
    import torch

    lin = torch.nn.Linear(4, 4)
    lin.weight.grad = torch.full((4, 4), 1e-30)
    assert fcnets.weight_grad_norms(torch.nn.Sequential(lin))[0] == pytest.approx(4e-30, rel=1e-5)


# ---------------------------------------------------------------- judge on hand-built numbers

CFG = vanishing.config_for("quick", seeds=2, depths=(10, 20), activations=ACTS)
GOOD = dict(sigmoid=(1e-6, 1e-6), relu=(1.0, 1.0), bn=(1.0, 1.0), example=(3e-5, 3e-5))
STRADDLE = (1e-4, 1.0)  # two seeds whose 95% interval contains the 1e-2 threshold


def _net(ratios, factor=0.3, wnorm=2.8, depth=10, trained=None):
    """Records of one activation at one depth, two seeds: weight-gradient ratios ``ratios``
    (one per seed, at init and, unless ``trained`` is given, after training), backpropagated
    norms growing by ``factor`` per layer toward the input."""
    act = [float(factor) ** (depth - i) for i in range(depth + 1)]
    return {"ratio_init": list(ratios), "ratio_trained": list(trained or ratios), "act_init": [act, act],
            "wnorm_init": [[wnorm] * depth] * 2, "dsigma_init": [[0.2] * depth] * 2}


def _data(max_derivative=0.25, factor=0.3, bn_factor=fcnets.YANG_FACTOR, bn_trained=None, **over):
    r = {**GOOD, **over}
    nets = {"sigmoid": {str(d): _net(r["sigmoid"], factor, depth=d) for d in CFG.depths},
            "relu": {str(d): _net(r["relu"], 1.0, 1.4, d) for d in CFG.depths},
            "relu+bn": {str(d): _net(r["bn"], bn_factor, 1.4, d, bn_trained) for d in CFG.depths}}
    example = {"layers": 10, "factors": 9, "sigma_bound": 0.25 ** 9, "ratio": list(r["example"]),
               "weight_bound": [0.04] * 2, "weight_grad_ratio": [1e-4] * 2, "mean_factor": [0.3] * 2,
               "mean_dsigma": [0.2] * 2, "mean_wnorm": [2.8] * 2}
    sig = {"max_derivative": max_derivative, "argmax": 0.0, "derivative": [0.1, max_derivative, 0.1]}
    return {"sigmoid": sig, "example": example, "nets": nets}


def _statuses(v):
    return [p["status"] for p in v["parts"]]


def test_judge_reproduced_on_good_numbers_with_sources_checks_and_findings():
    v = vanishing.judge(CFG, _data())
    assert v["outcome"] == base.REPRODUCED
    assert all(p["source"] and p["quote"] for p in v["parts"])
    assert [c["passed"] for c in v["checks"]] == [True, True]
    assert [f["held"] for f in v["findings"]] == [True, True]
    assert "Batch Normalization combined with ReLU" in v["parts"][3]["quote"]


@pytest.mark.parametrize("index, over", [(0, dict(sigmoid=(1.0, 1.0))), (1, dict(example=(1e-2, 1e-2))),
                                         (2, dict(relu=(1e-4, 1e-4))), (3, dict(bn=(1e-4, 1e-4)))])
def test_judge_contradicted_when_one_part_misses(index, over):
    v = vanishing.judge(CFG, _data(**over))
    assert v["outcome"] == base.CONTRADICTED
    assert _statuses(v)[index] == "contradicted" and _statuses(v).count("shown") == 3
    assert v["summary"].startswith("Contradicted: " + v["parts"][index]["name"])


def test_judge_contradicted_on_all_adverse_numbers():
    v = vanishing.judge(CFG, _data(sigmoid=(1.0, 1.0), example=(1.0, 1.0), relu=(1e-5, 1e-5), bn=(1e-5, 1e-5)))
    assert v["outcome"] == base.CONTRADICTED and set(_statuses(v)) == {"contradicted"}


def test_judge_partly_when_bn_straddles_the_threshold():
    v = vanishing.judge(CFG, _data(bn=STRADDLE))
    assert v["outcome"] == base.PARTLY
    assert _statuses(v) == ["shown", "shown", "shown", "not resolved"]
    assert "Not resolved at this budget: ReLU + BN" in v["summary"]


def test_judge_not_resolved_when_every_interval_straddles():
    v = vanishing.judge(CFG, _data(sigmoid=STRADDLE, relu=STRADDLE, bn=STRADDLE,
                                   example=(0.25 ** 9 / 100, 0.25 ** 9 * 100)))
    assert v["outcome"] == base.NOT_RESOLVED and set(_statuses(v)) == {"not resolved"}


def test_judge_one_seed_is_not_resolved():
    cfg = vanishing.config_for("quick", seeds=1, depths=(10,), activations=ACTS)
    one = {k: (v[0],) for k, v in GOOD.items()}
    v = vanishing.judge(cfg, _data(**one))
    assert v["outcome"] == base.NOT_RESOLVED


def test_bn_growth_at_init_is_a_finding_not_a_failed_part():
    # BN's first layer gets 1e4x the last's at init (Yang et al.'s explosion): no vanishing, part shown
    v = vanishing.judge(CFG, _data(bn=(1e4, 1e4), bn_trained=(1.0, 1.0)))
    assert v["outcome"] == base.REPRODUCED and v["findings"][1]["held"]


def test_findings_follow_their_criteria_without_changing_the_outcome():
    v = vanishing.judge(CFG, _data(bn_factor=1.5, bn=(1e3, 1e3)))  # growth stays after training
    assert v["outcome"] == base.REPRODUCED
    assert [f["status"] for f in v["findings"]] == ["contradicted", "contradicted"]
    assert "1.211" in v["findings"][0]["criterion"] and v["findings"][0]["prediction"]


def test_checks_flag_a_broken_instrument_without_changing_the_outcome():
    v = vanishing.judge(CFG, _data(factor=0.8, max_derivative=0.3))  # impossible for a real sigmoid net
    assert [c["passed"] for c in v["checks"]] == [False, False]
    assert v["outcome"] == base.REPRODUCED and "Check failed" in v["summary"]


def test_judge_not_judged_without_relu_bn():
    cfg = vanishing.config_for("quick", activations=("sigmoid", "relu"))
    v = vanishing.judge(cfg, _data())
    assert v["outcome"] == base.NOT_JUDGED and "relu+bn" in v["summary"]


# ---------------------------------------------------------------- config and CLI

@pytest.mark.parametrize("bad", [dict(seeds=0), dict(depths=(0,)), dict(activations=("swish",)),
                                 dict(dataset="mnist"), dict(threshold=2.0), dict(no_such_setting=1),
                                 dict(batch=10**6), dict(about_factor=0.5), dict(threads=0),
                                 dict(yang_tolerance=1.5), dict(settled_factor=0.5)])
def test_config_rejects_bad_settings(bad):
    with pytest.raises(ReslabError):
        vanishing.config_for("quick", **bad)


def test_run_and_save_writes_results_and_figures(tmp_path):
    cfg = vanishing.config_for("quick", seeds=1, dataset="synthetic", activations=ACTS, **TINY)
    results = run_and_save("vanishing", cfg, tmp_path)
    assert (tmp_path / "vanishing" / "results.json").is_file()
    assert len(list((tmp_path / "vanishing").glob("*.png"))) == 5
    assert results["config"]["threads"] == 1


def test_command_writes_results_and_returns_0(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(vanishing.SCALES, "quick", dict(seeds=1, dataset="synthetic", activations=ACTS, **TINY))
    assert main(["vanishing", "--out", str(tmp_path), "--quiet"]) == 0
    saved = json.loads((tmp_path / "vanishing" / "results.json").read_text())
    assert saved["config"]["seeds"] == 1 and saved["config"]["depths"] == [8]
    assert len(list((tmp_path / "vanishing").glob("*.png"))) == 5
    assert "[vanishing]" in capsys.readouterr().out


def test_command_bad_seeds_is_a_clean_error(tmp_path, capsys):
    assert main(["vanishing", "--out", str(tmp_path), "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "seeds" in err and "Traceback" not in err
    assert not (tmp_path / "vanishing").exists()
