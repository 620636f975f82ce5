"""The looks-linear experiment on the contract: a tiny run, its judge fed adverse numbers,
its figure, and the `reslab looks-linear` command (not registered in EXPERIMENTS)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from reslab import ReslabError
from reslab.cli import main
from reslab.experiments import EXPERIMENTS, base
from reslab.experiments import looks_linear as ll
from reslab.experiments import looks_linear_plots


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
    assert "looks_linear" not in EXPERIMENTS                  # the main job's budget is unchanged
    base.save_results(results, tmp_path)
    assert base.load_results(tmp_path)["verdict"]["outcome"] == base.REPRODUCED
    paths = looks_linear_plots.plot(json.loads((tmp_path / "results.json").read_text()), tmp_path)
    assert all(p.is_file() for p in paths)


def test_judge_with_adverse_numbers(results):
    cfg = _cfg()
    data = results["data"]
    bent = copy.deepcopy(data)
    bent["looks-linear"]["2"]["spread"][0] = 0.5             # one looks-linear net not linear
    v = ll.judge(cfg, bent)
    assert v["outcome"] == base.PARTLY and "linear at init" in v["summary"]
    noisy = copy.deepcopy(data)
    noisy["looks-linear"]["20"]["neighbour"] = [0.1, 0.0, -0.1]   # looks-linear shattered
    noisy["he"]["20"]["lag1"] = [0.9, 0.95, 0.92]                # He not shattered
    v = ll.judge(cfg, noisy)
    assert v["outcome"] == base.PARTLY
    assert [p["passed"] for p in v["parts"]] == [True, False, False]
    noisy["looks-linear"]["2"]["spread"] = [1.0, 1.0, 1.0]
    assert ll.judge(cfg, noisy)["outcome"] == base.NOT_REPRODUCED
    missing = copy.deepcopy(data)
    del missing["he"]["20"]
    assert ll.judge(cfg, missing)["outcome"] == base.NOT_REPRODUCED


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


def test_training_parts_on_favourable_and_adverse_numbers(results):
    cfg = ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64)
    data = copy.deepcopy(results["data"])
    data["training"] = _trained([0.40, 0.45, 0.42], [0.15, 0.16, 0.15], [0.15, 0.14, 0.15])
    v = ll.judge(cfg, data)
    assert v["outcome"] == base.REPRODUCED and len(v["parts"]) == 5
    data["training"] = _trained([0.40, 0.45, 0.42], [0.30, 0.31, 0.30], [0.15, 0.14, 0.15])  # better than He only
    v = ll.judge(cfg, data)
    assert v["outcome"] == base.PARTLY and [p["passed"] for p in v["parts"][3:]] == [True, False]
    assert "about as well as ResNet-56" in v["summary"]
    data["training"] = _trained([0.30, 0.31, 0.30], [0.40, 0.45, 0.42], [0.15, 0.14, 0.15])  # worse than both
    v = ll.judge(cfg, data)
    assert [p["passed"] for p in v["parts"][3:]] == [False, False]
    data.pop("training")
    assert ll.judge(cfg, data)["outcome"] == base.NOT_REPRODUCED or not all(p["passed"] for p in ll.judge(cfg, data)["parts"])


def test_tiny_training_half_trains_the_three_nets(tmp_path):
    cfg = ll.config_for("quick", 2, depths=(2, 4), width=16, grid_points=32, train_depth=8, train_seeds=2,
                        train_iterations=4, train_batch=32, train_subset=256, train_dataset="synthetic")
    res = ll.run(cfg, base.Context(tmp_path / "looks_linear"))
    nets = res["data"]["training"]["nets"]
    assert set(nets) == {"cifar-plain8", "cifar-plain-ll8", "cifar-resnet8"}
    assert all(len(n["runs"]) == 2 for n in nets.values()) and len(res["verdict"]["parts"]) == 5
    paths = looks_linear_plots.plot(res, tmp_path)
    assert {p.name for p in paths} >= {"looks_linear.png", "looks_linear_training.png"}
