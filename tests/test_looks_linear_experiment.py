"""The looks-linear experiment on the contract: a tiny run, its judge fed hand-built numbers
for every outcome (reproduced, partly, not resolved, contradicted, not judged), its figure,
and the `reslab looks-linear` command (an experiment that `reslab reproduce` does not run)."""

from __future__ import annotations

import json

import pytest
import torch

from reslab import ReslabError
from reslab.cli import main
from reslab.experiments import EXPERIMENTS, REPRODUCE, base
from reslab.experiments import looks_linear as ll
from reslab.experiments import looks_linear_plots
from reslab.experiments.looks_linear_measure import curve_numbers


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw):
    return ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64, **{"train_iterations": 0, **kw})


@pytest.fixture(scope="module")
def results():
    torch.set_num_threads(1)
    return ll.run(_cfg(), base.Context("unused"))


def test_tiny_run_reproduces_and_is_saved(results, tmp_path):
    assert results["experiment"] == "looks_linear"
    assert results["verdict"]["outcome"] == base.REPRODUCED, results["verdict"]
    assert "looks_linear" in EXPERIMENTS and "looks_linear" not in REPRODUCE  # reproduce's budget is unchanged
    base.save_results(results, tmp_path)
    assert base.load_results(tmp_path)["verdict"]["outcome"] == base.REPRODUCED
    paths = looks_linear_plots.plot(json.loads((tmp_path / "results.json").read_text()), tmp_path)
    assert all(p.is_file() for p in paths)


def _synthetic(spread=0.0, nb=(0.99, 0.98, 0.99), lag=(0.0, 0.05, -0.05)):
    """Hand-built at-init numbers for depths 2 and 20 (3 seeds): the deepest carry nb and lag."""
    data = {"looks-linear": {}, "he": {}}
    for d in ("2", "20"):
        data["looks-linear"][d] = {"spread": [spread, 0.0, 0.0], "lag1": [None] * 3, "neighbour": [1.0] * 3}
        data["he"][d] = {"spread": [1.0] * 3, "lag1": [0.8] * 3, "neighbour": [0.8] * 3}
    data["looks-linear"]["20"]["neighbour"] = list(nb)
    data["he"]["20"]["lag1"] = list(lag)
    return data


def _statuses(v):
    return [p["status"] for p in v["parts"]]


def test_every_part_quotes_its_source():
    cfg = ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64)
    data = {**_synthetic(), "training": _trained([0.40, 0.45, 0.42], [0.15, 0.16, 0.15], [0.15, 0.15, 0.15])}
    v = ll.judge(cfg, data)
    assert len(v["parts"]) == 5
    for p in v["parts"]:
        assert p["source"].startswith("Balduzzi et al. 2017") and p["quote"], p
        assert ("paraphrase" in p["source"]) == p["quote"].startswith("Paraphrase"), p  # said, never passed off
    assert [p["key"] for p in v["parts"]] == [False, True, True, True, False]


def test_judge_outcomes_on_synthetic_numbers():
    cfg = ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64)
    he, good_ll, res = [0.40, 0.45, 0.42], [0.15, 0.16, 0.15], [0.15, 0.15, 0.15]
    v = ll.judge(cfg, {**_synthetic(), "training": _trained(he, good_ll, res)})
    assert v["outcome"] == base.REPRODUCED and set(_statuses(v)) == {"shown"}
    # one seed where He plain trains well: the paired interval of He - LL contains 0
    v = ll.judge(cfg, {**_synthetic(), "training": _trained([0.40, 0.10, 0.42], good_ll, res)})
    assert v["outcome"] == base.PARTLY and _statuses(v)[3] == "not resolved"
    assert "Not resolved at this budget: the looks-linear plain-56 trains better" in v["summary"]
    # every key part across its line; nothing on the wrong side
    v = ll.judge(cfg, {**_synthetic(nb=(0.99, 0.5, 0.95), lag=(0.1, 0.9, 0.3)),
                       "training": _trained([0.40, 0.10, 0.42], good_ll, res)})
    assert v["outcome"] == base.NOT_RESOLVED
    assert _statuses(v) == ["shown", "not resolved", "not resolved", "not resolved", "shown"]
    # He plain not shattered (lag-1 clear above 0.5): contradicted
    v = ll.judge(cfg, {**_synthetic(lag=(0.9, 0.95, 0.92)), "training": _trained(he, good_ll, res)})
    assert v["outcome"] == base.CONTRADICTED and _statuses(v)[2] == "contradicted"
    # looks-linear clearly behind the ResNet, and a net not linear at init: contradicted parts
    v = ll.judge(cfg, {**_synthetic(spread=0.5), "training": _trained(he, [0.30, 0.31, 0.30], [0.15, 0.14, 0.15])})
    assert v["outcome"] == base.CONTRADICTED
    assert _statuses(v) == ["contradicted", "shown", "shown", "shown", "contradicted"]
    # looks-linear worse than He: the paired interval is clear of 0 on the wrong side
    v = ll.judge(cfg, {**_synthetic(), "training": _trained([0.15, 0.16, 0.15], he, res)})
    assert _statuses(v)[3:] == ["contradicted", "contradicted"]


def test_judge_not_judged_when_the_run_lacks_what_the_criteria_need():
    cfg = ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64)
    missing = _synthetic()
    del missing["he"]["20"]
    v = ll.judge(cfg, {**missing, "training": _trained([0.4] * 3, [0.2] * 3, [0.2] * 3)})
    assert v["outcome"] == base.NOT_JUDGED and "both nets" in v["summary"]
    v = ll.judge(cfg, _synthetic())  # training configured (600 iterations) but not in the results
    assert v["outcome"] == base.NOT_JUDGED and "plain-ll56" in v["summary"]
    assert ll.judge(replace_iterations(cfg), _synthetic())["outcome"] == base.REPRODUCED  # at-init half only


def replace_iterations(cfg):
    import dataclasses

    return dataclasses.replace(cfg, train_iterations=0)


def test_a_zero_gradient_has_no_neighbour_correlation():
    assert curve_numbers(torch.zeros(16))["neighbour"] is None
    assert curve_numbers(torch.full((16,), -4.0))["neighbour"] == pytest.approx(1.0)
    cfg = ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64, train_iterations=0)
    v = ll.judge(cfg, _synthetic(nb=(1.0, 1.0, None)))
    assert v["outcome"] == base.REPRODUCED and "1 seed(s) with df/dx = 0" in v["parts"][1]["observed"]
    v = ll.judge(cfg, _synthetic(nb=(1.0, None, None)))  # one defined seed: no interval
    assert _statuses(v)[1] == "not resolved"


def test_training_settings_are_the_experiments_own():
    cfg = ll.config_for("quick", 3)
    d = ll.training_config(cfg)
    assert (d.seeds, d.iterations, d.batch_size, d.train_subset, d.width) == (3, 600, 64, 2048, 0.25)
    assert (d.amp, d.bank, d.workers, d.threads, d.recipe, d.constructed) == ("off", True, 2, 1, "quick", False)
    assert d.kinds == ("plain", "plain-ll", "resnet") and d.depths == (56,)


def test_config_is_checked():
    with pytest.raises(ReslabError, match="seeds"):
        ll.config_for("quick", 1)
    with pytest.raises(ReslabError, match="unknown setting"):
        ll.config_for("quick", depth=3)
    with pytest.raises(ReslabError, match="block"):
        ll.config_for("quick", block="mid")


def test_cli_looks_linear(tmp_path, capsys):
    rc = main(["looks-linear", "--out", str(tmp_path), "--seeds", "2", "--depths", "2", "12", "--width", "16",
               "--train-iterations", "0", "--quiet"])
    assert rc == 0
    assert "[looks_linear]" in capsys.readouterr().out
    assert (tmp_path / "looks_linear" / "results.json").is_file()
    assert (tmp_path / "looks_linear" / "looks_linear.png").is_file()
    assert main(["looks-linear", "--out", str(tmp_path), "--seeds", "1"]) == 2


def _trained(he, ll_, res, d=56):
    """Hand-built per-seed final training errors of the three CIFAR nets."""
    nets = {}
    for kind, errs in (("plain", he), ("plain-ll", ll_), ("resnet", res)):
        nets[f"{kind}{d}"] = {"kind": kind, "depth": d, "runs": [{"final_train_error": e, "final_test_error": e}
                                                                 for e in errs]}
    return {"nets": nets}


def test_tiny_training_half_trains_the_three_nets(tmp_path):
    cfg = ll.config_for("quick", 2, depths=(2, 4), width=16, grid_points=32, train_depth=8, train_seeds=2,
                        train_iterations=4, train_batch=32, train_subset=256, train_dataset="synthetic",
                        train_workers=1)
    res = ll.run(cfg, base.Context(tmp_path / "looks_linear"))
    nets = res["data"]["training"]["nets"]
    assert set(nets) == {"cifar-plain8", "cifar-plain-ll8", "cifar-resnet8"}
    assert all(len(n["runs"]) == 2 for n in nets.values()) and len(res["verdict"]["parts"]) == 5
    paths = looks_linear_plots.plot(res, tmp_path)
    assert {p.name for p in paths} >= {"looks_linear.png", "looks_linear_training.png"}
