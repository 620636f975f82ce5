"""Small CLI fixes: info mlp, train --batch-size and the no-recipe warning, a bare `reslab`,
`data info` for a missing dataset, --version."""

from __future__ import annotations

import pytest

from reslab import __version__
from reslab.cli import build_parser, main


def test_bare_reslab_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: reslab") and "train" in out and "weights" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"reslab {__version__}"


def test_info_mlp_needs_depth_and_then_works(capsys):
    assert main(["info", "mlp"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--depth" in err
    assert main(["info", "mlp", "--depth", "3"]) == 0
    out = capsys.readouterr().out
    assert "model            mlp" in out and "weighted layers  4" in out
    assert main(["info", "resnet20", "--depth", "3"]) == 2
    assert "mlp only" in capsys.readouterr().err


def test_train_help_names_only_flags_that_exist(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--batch-size" in text
    args = build_parser().parse_args(["train", "--batch-size", "64", "--out", "x"])
    assert args.batch_size == 64


def _capture_train(monkeypatch):
    import reslab.training.loop as loop

    seen = {}

    def fake_train(cfg, out, **kw):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(loop, "train", fake_train)
    return seen


@pytest.mark.parametrize("extra,warns", [([], True), (["--recipe", "quick"], False), (["--iterations", "10"], False),
                                         (["--set", "iterations=64000"], False), (["--recipe", "he2016"], False)])
def test_train_without_recipe_warns(tmp_path, monkeypatch, capsys, extra, warns):
    seen = _capture_train(monkeypatch)
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "r"), "--batch-size", "64", *extra])
    err = capsys.readouterr().err
    assert ("warning" in err and "64,000" in err and "--recipe quick" in err) == warns, err
    assert seen["cfg"].batch_size == 64


def test_data_info_for_a_missing_dataset_points_to_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RESLAB_DATA", raising=False)
    assert main(["data", "info", "cifar100", "--data-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reslab data download cifar100" in err


def _subparsers(parser, path=()):
    """Every (sub-)command's parser, depth first: ("",), ("weights",), ("weights", "list"), ..."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*path, name))


_COMMANDS = [path for path, _ in _subparsers(build_parser()) if path]


@pytest.mark.parametrize("path", _COMMANDS, ids=[" ".join(p) for p in _COMMANDS])
def test_every_help_exits_0_with_a_description_and_no_double_percent(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "%%" not in text, "argparse prints descriptions as written: a '%%' there shows as '%%'"
    # usage, blank line, then the description paragraph before the argument sections
    paragraphs = text.split("\n\n")
    assert len(paragraphs) >= 3 and not paragraphs[1].lstrip().startswith(("positional", "options")), text
    assert len(paragraphs[1].split()) >= 5, f"`reslab {' '.join(path)} --help` has no description"


def test_dir_lists_the_lazy_api():
    import reslab

    names = dir(reslab)
    for name in ("load_model", "train", "probe", "evaluate", "create_model", "list_models", "TrainConfig"):
        assert name in names
        assert getattr(reslab, name) is not None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", "--model", "resnet20", "--dataset", "synthetic", "--iterations", "2", "--out", str(run),
                 "--set", "width=0.25", "--quiet"]) == 0
    return run


def test_eval_labels_the_per_class_column(tiny_run, capsys):
    assert main(["eval", str(tiny_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "error" in lines[0]
    head = lines[1].split()
    assert head == ["class", "images", "error"], lines[1]
    rows = [ln.split() for ln in lines[2:12]]
    assert len(rows) == 10 and all(0 <= float(r[-1]) <= 1 for r in rows)
    assert sum(int(r[1]) for r in rows) == int(lines[0].split("(")[1].split()[0])  # images add up to the split


def test_eval_does_not_write_into_a_run_a_trainer_holds(tiny_run, capsys):
    from reslab.training import rundir

    for f in tiny_run.glob("eval_*"):
        f.unlink()
    held = rundir.claim(tiny_run, resume=True)  # what a live `reslab train --resume` holds
    try:
        assert main(["eval", str(tiny_run)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "another reslab run" in err
        assert not list(tiny_run.glob("eval_*"))
    finally:
        held.release()
    assert main(["eval", str(tiny_run)]) == 0 and (tiny_run / "eval_val.json").is_file()
