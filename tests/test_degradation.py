"""The degradation experiment at tiny scale: the direction of the effect, the files, the CLI."""

from pathlib import Path

import pytest

from reslab.cli import main
from reslab.experiments import base, degradation

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Fashion-MNIST not installed (CI installs dataset-fashion-mnist)")
def test_plain56_trains_worse_than_plain20_and_resnet_less_so(tmp_path):
    cfg = degradation.config_for("quick", seeds=1, width=0.5, batch_size=64, train_subset=2048, iterations=100,
                                 eval_every=100, log_every=10, train_error_window=20)
    results = base.run_and_save(degradation, cfg, tmp_path)
    nets = results["data"]["nets"]
    plain_gap = nets["plain56"]["final_train_error_mean"] - nets["plain20"]["final_train_error_mean"]
    res_gap = nets["resnet56"]["final_train_error_mean"] - nets["resnet20"]["final_train_error_mean"]
    assert plain_gap > 0.02, nets
    assert res_gap < plain_gap
    assert results["verdict"]["numbers"]["plain_gap"] == pytest.approx(plain_gap)
    assert (tmp_path / "degradation" / "degradation.png").stat().st_size > 5000
    curve = nets["plain20"]["runs"][0]["curve"]
    assert curve["iteration"][-1] == 100 and len(curve["test_error"]) == 1
    again = base.load_results(tmp_path / "degradation")
    assert again["verdict"] == results["verdict"]


def test_judge_says_not_reproduced_when_plain_does_not_degrade():
    cfg = degradation.config_for("quick")
    nets = {n: {"final_train_error_mean": e} for n, e in
            {"plain20": 0.2, "plain56": 0.2, "resnet20": 0.2, "resnet56": 0.18}.items()}
    v = degradation.judge(cfg, nets)
    assert v["reproduced"] is False and "NOT" in v["summary"]
    nets["plain56"]["final_train_error_mean"] = 0.35
    assert degradation.judge(cfg, nets)["reproduced"] is True


def test_paper_table_rows():
    results = {"data": {"nets": {"resnet20": {"kind": "resnet", "depth": 20, "final_test_error_mean": 0.09},
                                 "plain20": {"kind": "plain", "depth": 20, "final_test_error_mean": 0.1}}}}
    rows = dict((n, (m, p)) for n, m, p in degradation.paper_table(results))
    assert rows["resnet20"] == (pytest.approx(9.0), 8.75) and rows["plain20"][1] is None


@pytest.mark.parametrize("args,match", [(["--depths", "21"], "6n+2"), (["--seeds", "0"], "seeds"),
                                        (["--iterations", "0"], "iterations")])
def test_cli_bad_input(tmp_path, capsys, args, match):
    assert main(["degradation", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "degradation").exists()


def test_rerun_into_the_same_directory_trains_afresh(tmp_path):
    cfg = degradation.config_for("quick", seeds=1, dataset="synthetic", depths=(8, 14), width=0.25, batch_size=32,
                                 train_subset=256, val_size=64, test_subset=64, iterations=4, eval_every=2,
                                 log_every=2, train_error_window=2)
    first = base.run_and_save(degradation, cfg, tmp_path)
    second = base.run_and_save(degradation, cfg, tmp_path)  # used to fail: "already holds a run"
    assert first["data"]["nets"]["cifar-plain14"]["runs"][0]["curve"] == second["data"]["nets"]["cifar-plain14"]["runs"][0]["curve"]
