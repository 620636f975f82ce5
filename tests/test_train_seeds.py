"""`reslab train --seeds`: one bank of seeds into OUT/seedS (or separate runs, saying why),
resumed as a bank, and `reslab plot` drawing the bank's seeds as one mean-and-band curve."""

from __future__ import annotations

import json

import pytest

from reslab.cli import main
from reslab.curves import group_runs, load_run

pytestmark = pytest.mark.usefixtures("one_thread")

# as tests/test_bank.py's TINY: a bankable CIFAR net on synthetic data, fp32
SETS = ["width=0.25", "train_subset=128", "val_size=32", "log_every=2", "eval_every=4", "ckpt_every=2",
        "schedule=constant", "amp=off", "lr=0.02"]


def _train(out, *extra, iterations=4):
    argv = ["train", "--model", "cifar-resnet8", "--dataset", "synthetic", "--iterations", str(iterations),
            "--batch-size", "16", "--out", str(out), "--quiet"]
    for s in SETS:
        argv += ["--set", s]
    return main(argv + list(extra))


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_seeds_train_one_bank_into_seed_dirs(tmp_path, capsys):
    out = tmp_path / "bank"
    assert _train(out, "--seeds", "0", "1", "3") == 0
    captured = capsys.readouterr()
    assert "bank of 3 x cifar-resnet8 (seeds [0, 1, 3])" in captured.err
    for s in (0, 1, 3):
        run = out / f"seed{s}"
        assert json.loads((run / "config.json").read_text())["seed"] == s
        assert (run / "model.safetensors").is_file() and _metrics(run)[-1]["iteration"] == 4
        assert f"seed {s} done at iteration 4" in captured.out
    index = json.loads((out / "bank.json").read_text())
    assert index["seeds"] == [0, 1, 3] and index["runs"] == ["seed0", "seed1", "seed3"]
    first = {r["iteration"]: r["train_loss"] for r in _metrics(out / "seed0") if "train_loss" in r}
    other = {r["iteration"]: r["train_loss"] for r in _metrics(out / "seed1") if "train_loss" in r}
    assert first != other  # each seed its own init and data order


_TIMING = ("images_per_s", "elapsed")


def _curve(run):
    return [{k: v for k, v in r.items() if k not in _TIMING} for r in _metrics(run)]


def test_interrupted_bank_resumes_to_the_uninterrupted_result(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from reslab.training import bank_loop

    whole = tmp_path / "whole"
    assert _train(whole, "--seeds", "0", "1", iterations=6) == 0
    original = bank_loop.BankLoop._step

    def step(self, batch, stop):  # Ctrl-C during iteration 4
        if self.it == 3:
            os.kill(os.getpid(), signal.SIGINT)
        original(self, batch, stop)

    monkeypatch.setattr(bank_loop.BankLoop, "_step", step)
    cut = tmp_path / "cut"
    assert _train(cut, "--seeds", "0", "1", iterations=6) == 130
    assert "seed 1 interrupted at iteration 4" in capsys.readouterr().out
    monkeypatch.setattr(bank_loop.BankLoop, "_step", original)
    assert main(["train", "--resume", str(cut), "--seeds", "0", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "bank of 2 x cifar-resnet8" in captured.err and "seed 1 done at iteration 6" in captured.out
    for s in (0, 1):
        assert _curve(cut / f"seed{s}") == _curve(whole / f"seed{s}")
    assert main(["train", "--resume", str(cut), "--quiet"]) == 0  # OUT's bank.json names the seeds
    assert main(["train", "--resume", str(cut), "--seeds", "0", "7"]) == 2
    assert "no run to resume in" in capsys.readouterr().err and not (cut / "seed7").exists()


def test_fallback_trains_one_after_another_and_says_why(tmp_path, capsys):
    out = tmp_path / "sep"
    assert _train(out, "--seeds", "0", "1", "--set", "probe_every=2") == 0
    err = capsys.readouterr().err
    assert "2 seeds one after another (accum_steps, compile and probe_every are single-run features" in err
    assert [json.loads((out / f"seed{s}" / "config.json").read_text())["seed"] for s in (0, 1)] == [0, 1]


def test_seeds_bad_input_is_one_line(tmp_path, capsys):
    assert main(["train", "--model", "cifar-resnet8", "--dataset", "synthetic", "--seeds", "0", "1"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert _train(tmp_path / "a", "--seeds", "1", "1") == 2
    assert "distinct seeds" in capsys.readouterr().err
    assert _train(tmp_path / "b", "--seeds", "0", "1", "--set", "seed=3") == 2
    assert "drop --set seed" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_plot_draws_a_bank_as_mean_and_band(tmp_path, capsys):
    out = tmp_path / "bank"
    assert _train(out, "--seeds", "0", "1", "2") == 0
    groups = group_runs([load_run(out / f"seed{s}") for s in (0, 1, 2)])
    assert len(groups) == 1 and groups[0].label.endswith("(3 seeds)")
    its, mean, lo, hi = groups[0].series("train_error")
    assert all(a <= m <= b for m, a, b in zip(mean, lo, hi)) and any(a < b for a, b in zip(lo, hi))
    capsys.readouterr()
    png = tmp_path / "c.png"
    assert main(["plot", str(out), "--out", str(png)]) == 0  # OUT holding bank.json: its runs
    assert "3 run(s), 1 setting(s)" in capsys.readouterr().out and png.stat().st_size > 1000
    (out / "bank.json").write_text('{"runs": 3}')
    assert main(["plot", str(out), "--out", str(tmp_path / "d.png")]) == 2
    assert "bank.json: not a bank index" in capsys.readouterr().err and not (tmp_path / "d.png").exists()
