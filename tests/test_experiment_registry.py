"""Experiments declare themselves: a module with a sibling ``NAME_plots.py`` is found, gets its
``reslab NAME`` command and its report section, and nothing else needs editing."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

import reslab.experiments as experiments
from reslab.cli import main
from reslab.errors import ReslabError
from reslab.experiments import declared, names

TOY = '''
from dataclasses import dataclass
from reslab.experiments import base

NAME = "toy_claim"
TITLE = "A toy claim"
IN_REPRODUCE = False
ORDER = 99
HELP = "a toy experiment"
DESCRIPTION = "Counts to n."
CLAIM = "Counting to n gives n."
SCALES = {"quick": {}, "full": {}}

@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    n: int = 3

def config_for(scale, seeds=None, **overrides):
    return base.config_from_scales(Config, SCALES, NAME, scale, seeds, overrides)

def add_flags(p):
    p.add_argument("--n", type=int)

def overrides(args):
    return {"n": args.n}

def judge(cfg, data):
    part = base.part("counts", "the count equals n", data["count"] == cfg.n, str(data["count"]))
    return base.verdict([part], "counted", count=data["count"])

def run(cfg, ctx):
    data = {"count": len(range(cfg.n))}
    return base.make_results(NAME, CLAIM, cfg, data, judge(cfg, data), 0.0)
'''

TOY_PLOTS = '''
from reslab.render import save_all, subplots

def figures(results):
    fig, ax = subplots()
    ax.plot([0, results["data"]["count"]])
    return {"toy": fig}

def plot(results, out_dir):
    return save_all(figures(results), out_dir)
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A throwaway experiment in a folder of its own, found through the package's path."""
    folder = tmp_path / "more_experiments"
    folder.mkdir()
    (folder / "toy_claim.py").write_text(textwrap.dedent(TOY))
    (folder / "toy_claim_plots.py").write_text(textwrap.dedent(TOY_PLOTS))
    monkeypatch.setattr(experiments, "__path__", [*experiments.__path__, str(folder)])
    yield "toy_claim"
    for m in ("reslab.experiments.toy_claim", "reslab.experiments.toy_claim_plots"):
        sys.modules.pop(m, None)


def test_the_shipped_experiments_in_order():
    assert names() == ["vanishing", "exploding", "shattered", "degradation", "looks_linear"]
    assert experiments.REPRODUCE == ["vanishing", "exploding", "shattered", "degradation"]
    for name in names():
        assert declared(name, "NAME") == name
        assert isinstance(declared(name, "TITLE"), str) and isinstance(declared(name, "IN_REPRODUCE"), bool)


def test_a_new_module_is_a_command_and_a_report_section(toy, tmp_path, capsys, monkeypatch):
    assert toy in experiments.EXPERIMENTS and toy not in experiments.REPRODUCE
    out = tmp_path / "out"
    assert main(["toy-claim", "--out", str(out), "--n", "4", "--quiet"]) == 0
    assert "[toy_claim]" in capsys.readouterr().out
    assert (out / toy / "toy.png").is_file()

    build = importlib.reload(importlib.import_module("reslab.report.build"))  # reads the titles on import
    try:
        assert main(["report", str(out)]) == 0
        assert "A toy claim" in (out / "report.md").read_text()
        assert "A toy claim" in (out / "report.html").read_text()
    finally:
        monkeypatch.undo()
        importlib.reload(build)


def test_a_module_missing_a_declaration_is_one_line(toy, tmp_path):
    (tmp_path / "more_experiments" / "toy_claim.py").write_text(textwrap.dedent(TOY).replace('TITLE = "A toy claim"\n', ""))
    with pytest.raises(ReslabError, match="toy_claim declares no TITLE"):
        experiments.EXPERIMENTS
