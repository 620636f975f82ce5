"""The degradation experiment: the judge's parts on adverse and favourable numbers, the direction
of the plain-net effect at tiny scale, the files, the CLI."""

from pathlib import Path

import pytest

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.experiments import base, degradation, run_and_save

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _nets(train: dict[str, list[float]], test: dict[str, list[float]] | None = None) -> dict:
    """Hand-built per-seed final errors, in the shape run() saves."""
    out = {}
    for name, errs in train.items():
        kind = "plain" if name.startswith("plain") else "resnet"
        tests = (test or {}).get(name, [e + 0.01 for e in errs])
        out[name] = {"kind": kind, "depth": int(name.removeprefix(kind)),
                     "runs": [{"seed": i, "final_train_error": e, "final_test_error": t}
                              for i, (e, t) in enumerate(zip(errs, tests))]}
    return out


CFG = degradation.config_for("quick", seeds=3)
BOTH = {"plain20": [0.18, 0.19, 0.17], "plain56": [0.30, 0.33, 0.31],
        "resnet20": [0.16, 0.157, 0.164], "resnet56": [0.122, 0.13, 0.137]}
TESTS = {"plain20": [0.20, 0.21, 0.19], "plain56": [0.32, 0.35, 0.33],
         "resnet20": [0.19, 0.18, 0.185], "resnet56": [0.17, 0.16, 0.17]}
KEYS = ("plain train", "plain test", "resnet train", "resnet test")


def _judge(train, test=None, cfg=CFG, constructed=None):
    data = {"nets": _nets(train, test or TESTS)}
    if constructed:
        data["constructed"] = constructed
    v = degradation.judge(cfg, data)
    names = [p["name"] for p in v["parts"]]
    status = {}
    for key, word in zip(KEYS, ("deeper plain nets have higher training", "and thus higher test",
                                "deeper ResNets have lower training", "and lower test")):
        status[key] = next(p["status"] for p in v["parts"] if p["name"].startswith(word))
    return v, status, names


def _constructed(scratch, built, shallow=None, diff=0.0):
    shallow = built if shallow is None else shallow
    return {"how": "eval mode", "per_seed": [
        {"seed": i, "scratch_train_error": a, "constructed_train_error": b, "shallow_train_error": c,
         "max_logit_diff": diff, "max_logit": 1.0} for i, (a, b, c) in enumerate(zip(scratch, built, shallow))]}


def test_reproduced_when_every_part_is_shown_and_every_part_cites_he_et_al():
    v, status, _ = _judge(BOTH, constructed=_constructed([0.3, 0.32, 0.31], [0.1, 0.11, 0.12]))
    assert v["outcome"] == base.REPRODUCED and set(status.values()) == {"shown"}
    assert len(v["parts"]) == 5 and all("He et al. 2016" in p["source"] and p["quote"] for p in v["parts"])
    assert "paired 95% CI" in v["parts"][0]["observed"] and "df=2" in v["parts"][0]["observed"]
    assert v["checks"] and all(c["passed"] for c in v["checks"])


def test_contradicted_when_the_deeper_resnet_is_clearly_worse():
    v, status, _ = _judge({**BOTH, "resnet20": [0.21, 0.215, 0.212], "resnet56": [0.24, 0.25, 0.247]})
    assert v["outcome"] == base.CONTRADICTED and status["resnet train"] == "contradicted"
    assert v["summary"].startswith("Contradicted: deeper ResNets have lower training error")


def test_partly_when_the_resnet_gap_is_within_seed_noise():
    # ResNet-56 lower on average, one seed the other way: the paired interval straddles 0.
    v, status, _ = _judge({**BOTH, "resnet20": [0.16, 0.15, 0.165], "resnet56": [0.12, 0.17, 0.14]},
                          {**TESTS, "resnet56": [0.2, 0.15, 0.19]})
    assert v["outcome"] == base.PARTLY and status["resnet train"] == "not resolved"
    assert status["plain train"] == "shown"
    assert "2 of 3 seeds positive" in next(p for p in v["parts"] if p["status"] == "not resolved")["observed"]


def test_not_resolved_when_no_key_part_is_resolved():
    noisy = {"plain20": [0.2, 0.3, 0.1], "plain56": [0.3, 0.2, 0.15],
             "resnet20": [0.2, 0.1, 0.3], "resnet56": [0.1, 0.2, 0.25]}
    v, status, _ = _judge(noisy, noisy)
    assert v["outcome"] == base.NOT_RESOLVED and set(status.values()) == {"not resolved"}


def test_pairing_resolves_what_an_unpaired_interval_would_not():
    # Seeds differ a lot from each other, but within each seed the deeper plain net is always worse.
    train = {**BOTH, "plain20": [0.10, 0.30, 0.50], "plain56": [0.13, 0.33, 0.52]}
    v, status, _ = _judge(train)
    assert status["plain train"] == "shown"
    assert stats_unpaired_straddles(train["plain56"], train["plain20"])


def stats_unpaired_straddles(a, b):
    from reslab.experiments import stats

    d = stats.difference(a, b)
    return d["lo"] < 0 < d["hi"]


def test_plain_test_error_contradicted_is_named():
    v, status, _ = _judge(BOTH, {**TESTS, "plain20": [0.3, 0.31, 0.29], "plain56": [0.25, 0.26, 0.24]})
    assert v["outcome"] == base.CONTRADICTED and status["plain test"] == "contradicted"


def test_constructed_solution_part_and_check():
    good = _constructed([0.3, 0.32, 0.31], [0.1, 0.11, 0.12])
    v, _, names = _judge(BOTH, constructed=good)
    assert any("constructed solution" in n for n in names)
    # the solver finds something better than the construction: contradicted
    v, _, _ = _judge(BOTH, constructed=_constructed([0.05, 0.06, 0.04], [0.1, 0.11, 0.12]))
    part = next(p for p in v["parts"] if "constructed" in p["name"])
    assert part["status"] == "contradicted" and v["outcome"] == base.CONTRADICTED
    # a construction that does not compute the shallower net's function fails its check
    v, _, _ = _judge(BOTH, constructed=_constructed([0.3, 0.32, 0.31], [0.1, 0.11, 0.12], diff=0.5))
    assert not v["checks"][0]["passed"] and "Check failed" in v["summary"]


def test_one_seed_is_not_resolved_not_contradicted():
    cfg = degradation.config_for("quick", seeds=1)
    v, status, _ = _judge({"plain20": [0.2], "plain56": [0.4], "resnet20": [0.2], "resnet56": [0.15]},
                          {"plain20": [0.2], "plain56": [0.3], "resnet20": [0.2], "resnet56": [0.1]}, cfg=cfg)
    assert set(status.values()) == {"not resolved"} and v["outcome"] == base.NOT_RESOLVED
    assert "no interval" in v["parts"][0]["observed"]


def test_more_than_two_depths_order_is_a_finding():
    cfg = degradation.config_for("quick", seeds=3, depths=(20, 32, 56))
    train = {"plain20": [0.18, 0.19, 0.2], "plain32": [0.25, 0.26, 0.27], "plain56": [0.31, 0.32, 0.33],
             "resnet20": [0.16, 0.161, 0.162], "resnet32": [0.15, 0.151, 0.152], "resnet56": [0.13, 0.131, 0.132]}
    test = {k: [x + 0.01 for x in v] for k, v in train.items()}
    v, _, _ = _judge(train, test, cfg=cfg)
    assert len(v["findings"]) == 2 and all(f["held"] for f in v["findings"])
    train["resnet32"] = [0.17, 0.171, 0.172]  # 32 above 20: the order breaks, the outcome does not change
    v2, _, _ = _judge(train, test, cfg=cfg)
    assert not v2["findings"][1]["held"] and v2["outcome"] == v["outcome"]


def test_cannot_judge_one_depth():
    cfg = degradation.config_for("quick", depths=(56,))
    v = degradation.judge(cfg, {"nets": _nets({"plain56": [0.3, 0.3, 0.3], "resnet56": [0.2, 0.2, 0.2]})})
    assert v["outcome"] == base.NOT_JUDGED and "two depths" in v["summary"]


def test_cannot_judge_without_both_kinds():
    cfg = degradation.config_for("quick", kinds=("plain",))
    v = degradation.judge(cfg, {"nets": _nets({"plain20": [0.2, 0.2, 0.2], "plain56": [0.3, 0.3, 0.3]})})
    assert v["outcome"] == base.NOT_JUDGED and "resnet20" in v["summary"]


@pytest.mark.parametrize("kw,match", [(dict(depths=(21, 56)), "6n\\+2"), (dict(depths=(20, 20)), "different"),
                                      (dict(kinds=("dense",)), "kinds"), (dict(recipe="x"), "recipe"),
                                      (dict(iterations=0), "iterations"), (dict(train_error_window=10_000), "window")])
def test_config_is_validated(kw, match):
    with pytest.raises(ReslabError, match=match):
        degradation.config_for("quick", **kw)


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Fashion-MNIST not installed (CI installs dataset-fashion-mnist)")
def test_plain56_trains_worse_than_plain20(tmp_path):
    """The direction of the plain half at a tiny budget (the ResNet half needs convergence)."""
    cfg = degradation.config_for("quick", seeds=1, kinds=("plain",), width=0.5, batch_size=64, train_subset=2048,
                                 iterations=100, eval_every=100, log_every=10, train_error_window=20)
    results = run_and_save("degradation", cfg, tmp_path)
    nets = results["data"]["nets"]
    assert nets["plain56"]["runs"][0]["final_train_error"] > nets["plain20"]["runs"][0]["final_train_error"] + 0.02
    assert results["verdict"]["outcome"] == base.NOT_JUDGED  # no ResNets run: it cannot be judged
    assert (tmp_path / "degradation" / "degradation.png").stat().st_size > 5000
    assert (tmp_path / "degradation" / "degradation_final.png").is_file()
    curve = nets["plain20"]["runs"][0]["curve"]
    assert curve["iteration"][-1] == 100 and len(curve["test_error"]) == 1
    # two banks at a time (the quick preset): each bank's log goes to its own file
    assert cfg.workers == 2 and (tmp_path / "degradation" / "runs" / "plain56-s0.log").is_file()
    assert base.load_results(tmp_path / "degradation")["verdict"] == results["verdict"]


def test_tiny_run_saves_every_seed_and_retrains_afresh(tmp_path):
    cfg = degradation.config_for("quick", seeds=2, dataset="synthetic", depths=(8, 14), batch_size=32,
                                 train_subset=256, val_size=64, test_subset=64, iterations=4, eval_every=2,
                                 log_every=2, train_error_window=2, workers=1)
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    first = run_and_save("degradation", cfg, tmp_path)
    # figures are standalone: no backend switch (a notebook keeps its own), no pyplot figures left open
    assert matplotlib.get_backend() == backend and plt.get_fignums() == []
    from matplotlib.figure import Figure

    from reslab.experiments import degradation_plots

    figs = degradation_plots.figures(first)
    assert set(figs) == {"degradation", "degradation_final", "degradation_constructed"}
    assert all(isinstance(f, Figure) for f in figs.values())
    assert (tmp_path / "degradation" / "degradation_final.png").stat().st_size > 5000
    nets = first["data"]["nets"]
    assert set(nets) == {"cifar-plain8", "cifar-plain14", "cifar-resnet8", "cifar-resnet14"}
    assert all(len(n["runs"]) == 2 for n in nets.values())
    assert first["verdict"]["outcome"] in base.OUTCOMES and len(first["verdict"]["parts"]) == 5
    constructed = first["data"]["constructed"]["per_seed"]
    assert len(constructed) == 2 and all(r["max_logit_diff"] <= 1e-5 * max(r["max_logit"], 1) for r in constructed)
    assert all(r["constructed_train_error"] == r["shallow_train_error"] for r in constructed)
    assert first["scope"]["seeds"] == 2 and "iterations" in first["scope"]["budget"]
    second = run_and_save("degradation", cfg, tmp_path)  # a rerun into the same directory trains afresh
    assert (first["data"]["nets"]["cifar-plain14"]["runs"][0]["curve"]
            == second["data"]["nets"]["cifar-plain14"]["runs"][0]["curve"])


@pytest.mark.parametrize("args,match", [(["--depths", "21"], "6n+2"), (["--seeds", "0"], "seeds"),
                                        (["--iterations", "0"], "iterations"), (["--threads", "0"], "threads")])
def test_cli_bad_input(tmp_path, capsys, args, match):
    assert main(["degradation", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err
    assert not (tmp_path / "degradation").exists()


def test_presets_have_at_least_five_seeds_trained_as_banks():
    med, quick = degradation.config_for("medium"), degradation.config_for("quick")
    assert med.seeds >= 5 and quick.seeds >= 5 and quick.bank and quick.workers == 2
    assert med.iterations * med.batch_size > quick.iterations * quick.batch_size
