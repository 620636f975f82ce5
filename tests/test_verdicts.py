"""The verdict machinery every experiment shares: parts with three statuses, checks and findings,
the five outcomes, the base config, the confidence intervals."""

import math

import pytest

from reslab.errors import ReslabError
from reslab.experiments import EXPERIMENTS, base, load, stats


def _part(ok, name="p"):
    return base.part(name, "criterion", ok, "observed")


@pytest.mark.parametrize("passed,outcome", [
    ((True, True), base.REPRODUCED),
    ((True, None), base.PARTLY),            # one part shown, one not resolved
    ((None, None), base.NOT_RESOLVED),      # nothing resolved at this budget
    ((True, False), base.CONTRADICTED),     # a part on the wrong side outweighs a shown one
    ((None, False), base.CONTRADICTED),
    ((), base.NOT_JUDGED)])
def test_outcome_of_parts(passed, outcome):
    v = base.verdict([_part(ok, f"part{i}") for i, ok in enumerate(passed)], "numbers")
    assert v["outcome"] == outcome and v["reproduced"] == (outcome == base.REPRODUCED)


def test_only_key_parts_make_a_claim_partly_rather_than_not_resolved():
    shown_but_supporting = base.part("supporting", "c", True, "o", key=False)
    v = base.verdict([shown_but_supporting, _part(None, "the key part")])
    assert v["outcome"] == base.NOT_RESOLVED


def test_summary_names_contradicted_and_unresolved_parts():
    v = base.verdict([_part(True, "deeper plain nets train worse"), _part(None, "deeper ResNets train better")], "x")
    assert v["outcome"] == "partly reproduced"
    assert v["summary"].startswith("Not resolved at this budget: deeper ResNets train better")
    line = base.verdict_line({"experiment": "degradation", "verdict": v})
    assert line.startswith("[degradation] PARTLY REPRODUCED: Not resolved at this budget: deeper ResNets")
    v = base.verdict([_part(False, "a"), _part(None, "b")], "x")
    assert v["summary"].startswith("Contradicted: a. Not resolved at this budget: b.")


def test_checks_and_findings_never_change_the_outcome():
    parts = [_part(True, "p")]
    v = base.verdict(parts, checks=[base.check("c", "s", False, "o")],
                     findings=[base.finding("f", "c", False, "o", prediction="x", source="y")])
    assert v["outcome"] == base.REPRODUCED and "Check failed" in v["summary"]
    assert v["findings"][0]["status"] == "contradicted" and not v["findings"][0]["held"]


def test_interval_status_reads_the_papers_side():
    from reslab.experiments.verdicts import interval_status

    assert interval_status({"lo": 0.1, "hi": 0.3}) is True
    assert interval_status({"lo": -0.3, "hi": -0.1}) is False
    assert interval_status({"lo": -0.1, "hi": 0.3}) is None
    assert interval_status({"lo": -0.3, "hi": -0.1}, side=-1) is True
    assert interval_status({"lo": None, "hi": None}) is None


def test_paired_difference_counts_seeds_each_way():
    d = stats.paired([0.3, 0.32, 0.29], [0.2, 0.25, 0.3])
    assert d["n"] == 3 and d["df"] == 2 and d["positive"] == 2 and d["negative"] == 1
    assert "2 of 3 seeds positive" in stats.paired_text(d)


def test_cannot_judge_is_not_judged():
    v = base.cannot_judge("nets missing")
    assert v["outcome"] == base.NOT_JUDGED and "nets missing" in v["summary"]


@pytest.mark.parametrize("kw,match", [(dict(scale="huge"), "scale"), (dict(seeds=0), "seeds"),
                                      (dict(seeds=True), "seeds"), (dict(threads=0), "threads")])
def test_base_config_is_validated(kw, match):
    with pytest.raises(ReslabError, match=match):
        base.ExperimentConfig(**kw)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_follows_the_contract(name):
    module = load(name)
    cfg = module.config_for("quick")
    assert isinstance(cfg, base.ExperimentConfig) and cfg.scale == "quick" and cfg.seeds >= 1
    assert isinstance(module.CLAIM, str) and callable(module.run) and callable(module.judge)
    with pytest.raises(ReslabError, match="unknown setting"):
        module.config_for("quick", no_such_setting=1)
    with pytest.raises(ReslabError, match="seeds"):
        module.config_for("quick", seeds=0)
    with pytest.raises(ReslabError, match="scale"):
        module.config_for("enormous")
    import importlib

    plots = importlib.import_module(f"reslab.experiments.{name}_plots")
    assert callable(plots.plot) and callable(plots.figures)  # figures(results): Figures for a notebook


def test_unknown_experiment():
    with pytest.raises(ReslabError, match="valid: vanishing"):
        load("nope")


def test_confidence_interval():
    s = stats.summary([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(1.0)
    assert s["half"] == pytest.approx(4.303 / math.sqrt(3))  # t(0.975, 2) * 1 / sqrt(3)
    assert s["lo"] < 2.0 < s["hi"]
    one = stats.summary([0.5])
    assert one["half"] is None and "no interval" in stats.text(one)
    d = stats.difference([1.0, 1.1, 0.9], [0.0, 0.1, -0.1])
    assert d["mean"] == pytest.approx(1.0) and d["lo"] > 0
    noisy = stats.difference([1.0, 0.0, 0.5], [0.5, 1.0, 0.0])
    assert noisy["lo"] < 0 < noisy["hi"]
    assert stats.t975(1) > stats.t975(10) > stats.t975(100) == 1.96


@pytest.mark.parametrize("command", ["vanishing", "reproduce"])
def test_missing_data_dir_is_one_line_and_writes_nothing(tmp_path, capsys, command):
    from reslab.cli import main

    assert main([command, "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--data-dir" in err and "no such directory" in err
    assert not (tmp_path / "o").exists()


def test_broken_pipe_is_quiet():
    import subprocess
    import sys

    proc = subprocess.run(f"'{sys.executable}' -m reslab weights list | head -1", shell=True, capture_output=True,
                          text=True)
    assert proc.stdout.startswith("source") and "Traceback" not in proc.stderr
