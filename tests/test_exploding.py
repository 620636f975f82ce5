"""The exploding-gradient experiment: directions of the effect, non-finite values caught,
judge logic on hand-built numbers, results shape, figures, CLI.  Tiny configs only; no
numbers from earlier runs are pinned."""

from __future__ import annotations

import json
import math

import pytest

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.experiments import base, exploding, exploding_plots, run_and_save
from reslab.experiments.fcnets import load_flat, normalise

TINY = dict(depths=(10,), width=64, n_images=256, batch=64, steps=8)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cfg = exploding.config_for("quick", seeds=1, **TINY)
    with base.torch_threads(cfg.threads):
        return exploding.run(cfg, base.Context(tmp_path_factory.mktemp("exploding")))


def test_gain_above_one_grows_the_backpropagated_gradient_toward_the_input(results):
    runs = results["data"]["runs"]
    g = exploding.layer_growth(runs["gain"]["10"][0])
    he = exploding.layer_growth(runs["normalised"]["10"][0])
    assert g["factor"] > 1 and g["ratio"] > 1
    assert g["factor"] > he["factor"]  # gain 1.5 vs He init's gain 1
    act = runs["gain"]["10"][0]["act_grad0"]
    assert act[0] > act[len(act) // 2] > act[-1]
    # the weight gradients do not show it: activations grow forward as gradients grow backward
    assert exploding.weight_ratio0(runs["gain"]["10"][0]) < g["ratio"]


def test_raw_pixels_without_bn_blow_up_with_bn_do_not(results):
    raw = results["data"]["runs"]["raw"]["10"][0]
    rbn = results["data"]["runs"]["raw+bn"]["10"][0]
    assert rbn["nonfinite"] is None and all(math.isfinite(g) for g in rbn["grad_norm"])
    assert raw["nonfinite"] is not None or exploding.max_finite(raw) > 100 * exploding.max_finite(rbn)
    norm = results["data"]["runs"]["normalised"]["10"][0]
    assert raw["grad_norm"][0] > norm["grad_norm"][0]  # before any update, raw pixels give the larger gradient


def test_nonfinite_is_caught_and_located():
    cfg = exploding.config_for("quick", seeds=1, conditions=("raw",), init_gain=3.0, lr=1.0,
                               **{**TINY, "steps": 20})
    x, y = load_flat(cfg.dataset, cfg.n_images)
    with base.torch_threads(1):
        rec = exploding.train(cfg, "raw", 10, 0, x, y)  # must not raise
    nf = rec["nonfinite"]
    assert nf is not None and nf["step"] < cfg.steps
    assert nf["phase"] in ("forward", "loss", "backward")
    assert nf["layer"] is None or 1 <= nf["layer"] <= rec["n_layers"] == 11
    assert len(rec["grad_norm"]) == len(rec["loss"]) == nf["step"] + 1
    assert rec["layers"]["step"][-1] == nf["step"]


def test_layer_growth_fit_recovers_a_known_factor():
    rec = {"act_grad0": [1.5 ** (10 - i) for i in range(11)]}
    g = exploding.layer_growth(rec)
    assert g["factor"] == pytest.approx(1.5) and g["ratio"] == pytest.approx(1.5 ** 10)
    assert math.isnan(exploding.layer_growth({"act_grad0": None})["factor"])


def test_results_shape_and_parts(results):
    assert results["experiment"] == "exploding" and "DESIGN" not in results["claim"]
    assert set(results) >= {"claim", "config", "conditions", "seconds", "verdict", "data", "scope"}
    v = results["verdict"]
    assert v["outcome"] in base.OUTCOMES and len(v["parts"]) == 4
    assert set(v["numbers"]) == set(exploding.CONDITIONS)
    rec = results["data"]["runs"]["gain+bn"]["10"][0]
    assert len(rec["grad_norm"]) == TINY["steps"] and len(rec["act_grad0"]) == 11
    assert rec["layers"]["step"] == [0, 1, 2, 3, 4, TINY["steps"] - 1]
    json.dumps(base._jsonable(results))


def test_plot_writes_pngs_from_saved_results(results, tmp_path):
    base.save_results(results, tmp_path)
    saved = base.load_results(tmp_path)  # inf/NaN went through JSON as "inf"/null
    paths = exploding_plots.plot(saved, tmp_path)
    assert len(paths) == 3
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- judge on hand-built numbers

CFG = exploding.config_for("quick", seeds=2, depths=(10, 20), steps=5)


def _rec(factor=1.0, grad_norm=(1.0, 1.0, 1.0), nonfinite_step=None, depth=10):
    """One run: step-0 backpropagated norms growing by ``factor`` per layer toward the input."""
    nf = None if nonfinite_step is None else {"step": nonfinite_step, "phase": "forward", "layer": 2,
                                              "layer_name": "blocks.0.branch.fc"}
    return {"act_grad0": [float(factor) ** (depth - i) for i in range(depth + 1)],
            "grad_norm": list(grad_norm), "loss": [2.3] * len(grad_norm), "nonfinite": nf,
            "layers": {"step": [0], "grad": [[1.0] * (depth + 1)], "act_rms": [[1.0] * (depth + 1)]},
            "n_layers": depth + 1}


def _data(gain=1.5, gain_bn=1.0, raw_nonfinite=2, raw_bn_nonfinite=None, raw_bn_growth=1.0):
    def cond(**kw):
        return {str(d): [_rec(depth=d, **kw)] * 2 for d in CFG.depths}

    return {"runs": {"gain": cond(factor=gain, nonfinite_step=1),
                     "gain+bn": cond(factor=gain_bn),
                     "raw": cond(nonfinite_step=raw_nonfinite),
                     "raw+bn": cond(grad_norm=(1.0, raw_bn_growth), nonfinite_step=raw_bn_nonfinite),
                     "normalised": cond(), "normalised+bn": cond(factor=1.2)}}


def test_judge_reproduced_on_good_numbers():
    assert exploding.judge(CFG, _data())["outcome"] == base.REPRODUCED


def test_judge_not_reproduced_on_adverse_numbers():
    v = exploding.judge(CFG, _data(gain=0.9, gain_bn=1.5, raw_nonfinite=None, raw_bn_nonfinite=3))
    assert v["outcome"] == base.NOT_REPRODUCED
    assert not any(p["passed"] for p in v["parts"])


def test_judge_partly_when_bn_does_not_level_the_layers_names_the_part():
    v = exploding.judge(CFG, _data(gain_bn=1.21))  # 1.21^20 ≈ 45 > stable_factor 10
    assert v["outcome"] == base.PARTLY
    failed = [p["name"] for p in v["parts"] if not p["passed"]]
    assert len(failed) == 1 and failed[0].startswith("BN + ReLU (same gain")
    assert "Not shown: BN + ReLU (same gain" in v["summary"]


def test_judge_partly_when_raw_bn_gradient_grows():
    v = exploding.judge(CFG, _data(raw_bn_growth=50.0))
    assert v["outcome"] == base.PARTLY and not v["parts"][3]["passed"]


def test_judge_layer_growth_needs_the_total_at_the_deepest_depth():
    v = exploding.judge(CFG, _data(gain=1.1))  # 1.1^20 ≈ 6.7 < explode_factor 100
    assert not v["parts"][0]["passed"] and v["outcome"] == base.PARTLY


def test_judge_cannot_judge_without_a_gain_above_one_or_a_condition():
    v = exploding.judge(exploding.config_for("quick", layer_gain=1.0), _data())
    assert v["outcome"] == base.NOT_REPRODUCED and "layer_gain" in v["summary"]
    v = exploding.judge(exploding.config_for("quick", conditions=("raw", "gain")), _data())
    assert v["outcome"] == base.NOT_REPRODUCED and "gain+bn" in v["summary"]


# ---------------------------------------------------------------- config and CLI

@pytest.mark.parametrize("bad", [dict(seeds=0), dict(steps=0), dict(conditions=("raw", "clipped")),
                                 dict(init_gain=0.0), dict(layer_gain=-1.0), dict(stable_factor=1000.0),
                                 dict(lr=-1.0), dict(threads=0)])
def test_config_rejects_bad_settings(bad):
    with pytest.raises(ReslabError):
        exploding.config_for("quick", **bad)


def test_run_and_save_writes_results_and_figures(tmp_path):
    cfg = exploding.config_for("quick", seeds=1, dataset="synthetic", **{**TINY, "steps": 3})
    run_and_save("exploding", cfg, tmp_path)
    assert (tmp_path / "exploding" / "results.json").is_file()
    assert len(list((tmp_path / "exploding").glob("*.png"))) == 3


def test_command_writes_results_and_returns_0(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(exploding.SCALES, "quick", dict(seeds=1, **TINY))
    assert main(["exploding", "--out", str(tmp_path), "--quiet"]) == 0
    saved = json.loads((tmp_path / "exploding" / "results.json").read_text())
    assert saved["config"]["steps"] == TINY["steps"] and saved["config"]["threads"] == 1
    assert len(list((tmp_path / "exploding").glob("*.png"))) == 3
    assert "[exploding]" in capsys.readouterr().out


def test_command_bad_seeds_is_a_clean_error(tmp_path, capsys):
    assert main(["exploding", "--out", str(tmp_path), "--seeds", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "exploding").exists()


def test_normalise_gives_zero_mean_unit_std():
    x, _ = load_flat("synthetic", 64)
    z = normalise(x)
    assert abs(z.mean().item()) < 1e-5 and z.std().item() == pytest.approx(1.0, rel=1e-4)
