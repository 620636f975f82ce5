"""The exploding-gradient experiment: directions of the effect, non-finite values caught,
judge logic on hand-built numbers, results shape, figures, CLI.  Tiny configs only; no
numbers from earlier runs are pinned."""

from __future__ import annotations

import json
import math

import pytest

from reslab.cli import main
from reslab import render
from reslab.errors import ReslabError
from reslab.experiments import base, exploding, exploding_plots, exploding_train, fcnets, run_and_save
from reslab.experiments.fcnets import load_flat, normalise

TINY = dict(depths=(10,), width=64, n_images=256, batch=64, steps=8)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cfg = exploding.config_for("quick", seeds=1, **TINY)
    with base.torch_threads(cfg.threads):
        return exploding.run(cfg, base.Context(tmp_path_factory.mktemp("exploding")))


def test_gain_above_one_grows_the_backpropagated_gradient_toward_the_input(results):
    runs = results["data"]["runs"]
    g = exploding_train.layer_growth(runs["gain"]["10"][0])
    he = exploding_train.layer_growth(runs["normalised"]["10"][0])
    assert g["factor"] > 1 and g["ratio"] > 1
    assert g["factor"] > he["factor"]  # gain 1.5 vs He init's gain 1
    act = runs["gain"]["10"][0]["act_grad0"]
    assert act[0] > act[len(act) // 2] > act[-1]
    # the weight gradients do not show it: activations grow forward as gradients grow backward
    assert exploding_train.weight_ratio0(runs["gain"]["10"][0]) < g["ratio"]


def test_raw_pixels_without_bn_blow_up_with_bn_do_not(results):
    raw = results["data"]["runs"]["raw"]["10"][0]
    rbn = results["data"]["runs"]["raw+bn"]["10"][0]
    assert rbn["nonfinite"] is None and all(math.isfinite(g) for g in rbn["grad_norm"])
    assert raw["nonfinite"] is not None or exploding_train.max_finite(raw) > 100 * exploding_train.max_finite(rbn)
    norm = results["data"]["runs"]["normalised"]["10"][0]
    assert raw["grad_norm"][0] > norm["grad_norm"][0]  # before any update, raw pixels give the larger gradient
    assert raw["update_first"][0] > norm["update_first"][0]  # and the larger first update


def test_nonfinite_is_caught_and_located():
    cfg = exploding.config_for("quick", seeds=1, conditions=("raw",), init_gain=3.0, lr=1.0,
                               **{**TINY, "steps": 20})
    x, y = load_flat(cfg.dataset, cfg.n_images)
    with base.torch_threads(1):
        rec = exploding_train.train(cfg, "raw", 10, 0, x, y)  # must not raise
    nf = rec["nonfinite"]
    assert nf is not None and nf["step"] < cfg.steps
    assert nf["phase"] in ("forward", "loss", "backward")
    assert nf["layer"] is None or 1 <= nf["layer"] <= rec["n_layers"] == 11
    assert len(rec["grad_norm"]) == len(rec["loss"]) == nf["step"] + 1
    assert rec["layers"]["step"][-1] == nf["step"]


def test_layer_growth_fit_recovers_a_known_factor():
    rec = {"act_grad0": [1.5 ** (10 - i) for i in range(11)]}
    g = exploding_train.layer_growth(rec)
    assert g["factor"] == pytest.approx(1.5) and g["ratio"] == pytest.approx(1.5 ** 10)
    assert math.isnan(exploding_train.layer_growth({"act_grad0": None})["factor"])


def test_results_shape_and_parts(results):
    assert results["experiment"] == "exploding"
    assert set(results) >= {"claim", "config", "conditions", "seconds", "verdict", "data", "scope"}
    v = results["verdict"]
    assert v["outcome"] in base.OUTCOMES and len(v["parts"]) == 6
    assert len(v["checks"]) == 1 and len(v["findings"]) == 3
    assert all(p["source"] and p["quote"] and p["criterion"] for p in v["parts"])
    assert set(v["numbers"]) == set(exploding.CONDITIONS)
    rec = results["data"]["runs"]["gain+bn"]["10"][0]
    assert len(rec["grad_norm"]) == TINY["steps"] and len(rec["act_grad0"]) == 11
    assert rec["layers"]["step"] == [0, 1, 2, 3, 4, TINY["steps"] - 1]
    assert len(rec["update_first"]) == TINY["steps"] and all(u > 0 for u in rec["update_first"])
    json.dumps(render.jsonable(results))


def test_plot_writes_pngs_from_saved_results(results, tmp_path):
    base.save_results(results, tmp_path)
    saved = base.load_results(tmp_path)  # inf/NaN went through JSON as "inf"/null
    paths = exploding_plots.plot(saved, tmp_path)
    assert len(paths) == 3
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- judge on hand-built numbers

CFG = exploding.config_for("quick", seeds=2, depths=(10, 20), steps=5)
Y = fcnets.YANG_FACTOR


def _rec(factor=1.0, depth=10, h0=1.0, w0=1.0, grad_norm=(1.0, 1.0, 1.0, 1.0, 1.0), nonfinite_step=None,
         updates=(0.002,)):
    """One run: step-0 backpropagated norms growing by ``factor`` per layer toward the input
    (the first layer's times ``h0``), first-layer weight gradient ``w0`` at step 0."""
    nf = None if nonfinite_step is None else {"step": nonfinite_step, "phase": "forward", "layer": 2,
                                              "layer_name": "blocks.0.branch.fc"}
    act = [float(factor) ** (depth - i) for i in range(depth + 1)]
    act[0] *= h0
    grads = list(grad_norm) if nonfinite_step is None else [1.0] * nonfinite_step + [None]
    return {"act_grad0": act, "grad_norm": grads, "loss": [2.3] * len(grads), "nonfinite": nf,
            "update_first": list(updates), "n_layers": depth + 1,
            "layers": {"step": [0], "grad": [[w0] + [1.0] * depth], "act_rms": [[1.0] * (depth + 1)]}}


def _cond(per_seed: list[dict]) -> dict:
    return {str(d): [_rec(depth=d, **kw) for kw in per_seed] for d in CFG.depths}


def _data(gain=(1.5, 1.5), bn_scale=1.0, raw_w0=300.0, raw_updates=(0.5, 1e4), raw_nf=2, bn_nf=None,
          raw_bn_growth=1.0, bn_factor=Y, raw_bn_h1=1.0):
    """Two seeds per condition; the arguments are the numbers each part or finding reads."""
    return {"runs": {
        "gain": _cond([dict(factor=g, nonfinite_step=1) for g in gain]),
        "gain+bn": _cond([dict(factor=bn_factor, h0=bn_scale, nonfinite_step=bn_nf)] * 2),
        "raw": _cond([dict(w0=raw_w0, nonfinite_step=raw_nf, updates=raw_updates)] * 2),
        "raw+bn": _cond([dict(factor=bn_factor * raw_bn_h1, h0=1 / 90,
                               grad_norm=(1.0, raw_bn_growth, 1.0, 1.0, 1.0))] * 2),
        "normalised": _cond([{}] * 2),
        "normalised+bn": _cond([dict(factor=bn_factor)] * 2)}}


def _statuses(v):
    return [p["status"] for p in v["parts"]]


def test_judge_reproduced_on_good_numbers_with_sources_checks_and_findings():
    v = exploding.judge(CFG, _data())
    assert v["outcome"] == base.REPRODUCED, v["summary"]
    assert all(p["source"] and p["quote"] for p in v["parts"])
    assert [c["passed"] for c in v["checks"]] == [True]
    assert [f["status"] for f in v["findings"]] == ["shown"] * 3
    assert "NaN" in v["parts"][3]["quote"] and "§3.3" in v["parts"][4]["source"]


@pytest.mark.parametrize("index, over", [
    (0, dict(gain=(1.3, 1.3))),                # the factor is not the gain
    (1, dict(raw_w0=2.0)),                     # raw inputs barely change the first layer's gradient
    (2, dict(raw_updates=(0.01, 0.5))),        # no update outgrows the weights
    (3, dict(raw_nf=None, raw_updates=(0.01, 5.0))),  # raw inputs stay finite
    (4, dict(bn_scale=1.5)),                   # with BN the weights' scale changes the ratio
    (5, dict(raw_bn_growth=50.0))])            # BN's gradient norm grows over the steps
def test_judge_contradicted_when_one_part_misses(index, over):
    v = exploding.judge(CFG, _data(**over))
    assert v["outcome"] == base.CONTRADICTED
    assert _statuses(v)[index] == "contradicted" and _statuses(v).count("shown") == 5, _statuses(v)
    assert v["summary"].startswith("Contradicted: " + v["parts"][index]["name"])


def test_judge_contradicted_on_all_adverse_numbers():
    v = exploding.judge(CFG, _data(gain=(1.0, 1.0), bn_scale=2.0, raw_w0=1.0, raw_updates=(0.001,), raw_nf=None,
                                   bn_nf=3))
    assert v["outcome"] == base.CONTRADICTED and set(_statuses(v)) == {"contradicted"}


def test_judge_partly_when_the_gain_factor_straddles_its_band():
    v = exploding.judge(CFG, _data(gain=(1.2, 1.8)))  # mean 1.5, but the interval spans the ±5% band
    assert v["outcome"] == base.PARTLY
    assert _statuses(v) == ["not resolved"] + ["shown"] * 5
    assert "Not resolved at this budget: without BN" in v["summary"]


def test_judge_one_seed_leaves_every_interval_part_not_resolved():
    # the event parts (update, overflow, finite with BN) are decided; the interval parts need two seeds
    cfg = exploding.config_for("quick", seeds=1, depths=(10,), steps=5)
    data = {"runs": {c: {"10": rs["10"][:1]} for c, rs in _data()["runs"].items()}}
    v = exploding.judge(cfg, data)
    assert _statuses(v) == ["not resolved", "not resolved", "shown", "shown", "not resolved", "shown"]
    assert v["outcome"] == base.PARTLY


def test_findings_follow_their_criteria_without_changing_the_outcome():
    v = exploding.judge(CFG, _data(bn_factor=1.5, raw_bn_h1=1.1))
    assert v["outcome"] == base.REPRODUCED
    assert [f["status"] for f in v["findings"]] == ["contradicted", "contradicted", "shown"]
    assert v["findings"][0]["prediction"] and "1.211" in v["findings"][0]["criterion"]


def test_check_flags_an_unlocated_overflow():
    data = _data()
    data["runs"]["raw"]["10"][0]["nonfinite"]["step"] = 0  # the record says step 0, the norms say step 2
    v = exploding.judge(CFG, data)
    assert not v["checks"][0]["passed"] and "Check failed" in v["summary"]


def test_judge_not_judged_without_a_gain_above_one_or_a_condition():
    v = exploding.judge(exploding.config_for("quick", layer_gain=1.0), _data())
    assert v["outcome"] == base.NOT_JUDGED and "layer_gain" in v["summary"]
    v = exploding.judge(exploding.config_for("quick", conditions=("raw", "gain")), _data())
    assert v["outcome"] == base.NOT_JUDGED and "gain+bn" in v["summary"]


# ---------------------------------------------------------------- config and CLI

@pytest.mark.parametrize("bad", [dict(seeds=0), dict(steps=0), dict(conditions=("raw", "clipped")),
                                 dict(init_gain=0.0), dict(layer_gain=-1.0), dict(stable_factor=0.5),
                                 dict(gain_tolerance=1.5), dict(raw_gradient_factor=1.0), dict(oversize_update=0.0),
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
