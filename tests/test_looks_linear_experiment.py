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


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(**kw):
    return ll.config_for("quick", 3, depths=(2, 20), width=32, grid_points=64, **kw)


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
               "--quiet"])
    assert rc == 0
    assert "[looks_linear]" in capsys.readouterr().out
    assert (tmp_path / "looks_linear" / "results.json").is_file()
    assert (tmp_path / "looks_linear" / "looks_linear.png").is_file()
    assert main(["looks-linear", "--out", str(tmp_path), "--seeds", "1"]) == 2
