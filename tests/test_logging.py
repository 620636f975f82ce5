"""Output as Python users expect: reslab's records go to logging.getLogger("reslab"), the library
never prints, quiet=True prints nothing, a progress bar only on a terminal, the CLI shows the
same lines as before, and the run header names each metrics logger (TensorBoard, W&B)."""

from __future__ import annotations

import io
import logging
import sys
import types

import pytest

import reslab
from reslab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"model": "resnet20", "dataset": "synthetic", "iterations": 4, "log_every": 2, "eval_every": 4,
        "width": 0.25, "batch_size": 16}


@pytest.fixture(autouse=True)
def no_optional_loggers(monkeypatch):
    """Each test says which optional loggers exist and whether W&B is asked for: by default
    neither is importable and W&B is not asked for."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import -> ImportError
    monkeypatch.setitem(sys.modules, "wandb", None)
    for var in ("RESLAB_WANDB", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    logger = logging.getLogger("reslab")
    before = (list(logger.handlers), logger.level)
    yield
    assert (list(logger.handlers), logger.level) == before, "reslab left a handler or level behind"


def test_quiet_train_prints_nothing(tmp_path, capfd):
    result = reslab.train(TINY, tmp_path / "r", quiet=True)
    assert result.iterations == 4
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_records_go_to_the_reslab_logger_even_when_quiet(tmp_path, caplog, capfd):
    with caplog.at_level(logging.DEBUG, logger="reslab"):
        reslab.train(TINY, tmp_path / "r", quiet=True)
    msgs = [r.getMessage() for r in caplog.records if r.name.startswith("reslab")]
    assert any(m.startswith("reslab train: resnet20 on synthetic") for m in msgs)
    assert sum("iteration=" in m and "train_error=" in m for m in msgs) == 2  # log_every=2 over 4 iterations
    assert capfd.readouterr().err == ""  # the application's handler took them; nothing printed besides


def test_not_quiet_without_logging_setup_shows_plain_lines_and_no_bar_off_a_terminal(tmp_path, monkeypatch):
    err = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # a script or notebook that set up no logging
    reslab.train(TINY, tmp_path / "r", quiet=False)
    text = err.getvalue()
    header = text.splitlines()[0]
    assert header.startswith("reslab train: resnet20") and "logging to metrics.jsonl" in header
    assert "TensorBoard off (pip install tensorboard)" in header and "W&B off (set RESLAB_WANDB" in header
    assert "\r" not in text and "it/s" not in text  # no progress bar
    assert sum("iteration=" in line for line in text.splitlines()) == 2


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal(tmp_path, monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    reslab.train(TINY, tmp_path / "r", quiet=False)
    text = err.getvalue()
    assert "4/4" in text and "it" in text and "\r" in text  # tqdm's bar
    assert "iteration=" not in text  # the metrics lines are in the bar's postfix, not printed
    assert "reslab train: resnet20" in text  # the header still shows, above the bar


def test_cli_train_shows_the_header_and_plain_lines(tmp_path, capsys):
    assert main(["train", "--model", "resnet20", "--dataset", "synthetic", "--iterations", "4", "--set", "log_every=2",
                 "--set", "width=0.25", "--batch-size", "16", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "reslab train: resnet20 on synthetic" in err and "TensorBoard off" in err
    assert sum("iteration=" in line for line in err.splitlines()) == 2


def _fake_tensorboard(calls):
    mod = types.ModuleType("torch.utils.tensorboard")

    class SummaryWriter:
        def __init__(self, logdir, purge_step=None):
            calls.append(("init", logdir))

        def add_scalar(self, tag, value, step):
            calls.append(("scalar", tag, step))

        def add_hparams(self, hp, metrics, run_name=None):
            calls.append(("hparams", hp, metrics))

        def close(self):
            calls.append(("close",))

    mod.SummaryWriter = SummaryWriter
    return mod


def test_tensorboard_gets_scalars_and_hparams_and_the_header_names_it(tmp_path, monkeypatch, caplog):
    calls = []
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", _fake_tensorboard(calls))
    with caplog.at_level(logging.INFO, logger="reslab"):
        reslab.train(TINY, tmp_path / "r", quiet=True)
    header = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("reslab train: resnet20"))
    assert f"TensorBoard ({tmp_path / 'r' / 'tb'})" in header and "TensorBoard off" not in header
    assert ("scalar", "train_error", 2) in calls and ("scalar", "val_error", 4) in calls
    hp = [c for c in calls if c[0] == "hparams"]
    assert len(hp) == 1 and hp[0][1]["model"] == "resnet20" and hp[0][1]["iterations"] == 4
    assert set(hp[0][2]) == {"hparam/train_error", "hparam/val_error"}
    assert calls[-1] == ("close",)


def _fake_wandb(calls):
    """A stand-in for the wandb package that records what reslab asks of it (the real one
    is not a test dependency: it costs about 28 s to install and reslab uses four calls)."""
    mod = types.ModuleType("wandb")

    class Run:
        def log(self, data, step=None):
            calls.append(("log", data, step))

        def finish(self):
            calls.append(("finish",))

    def init(**kw):
        calls.append(("init", kw))
        return Run()

    mod.init, mod.Settings = init, lambda **kw: ("settings", kw)
    return mod


def _header(caplog):
    return next(r.getMessage() for r in caplog.records if r.getMessage().startswith("reslab train: resnet20"))


def test_wandb_installed_but_not_asked_for_stays_off(tmp_path, monkeypatch, caplog):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    monkeypatch.delenv("RESLAB_WANDB", raising=False)
    with caplog.at_level(logging.INFO, logger="reslab"):
        reslab.train(TINY, tmp_path / "r", quiet=True)
    assert calls == []  # never initialised: no login prompt, no "no API key"
    assert "W&B off (set RESLAB_WANDB=PROJECT to log to Weights & Biases)" in _header(caplog)
    monkeypatch.setenv("RESLAB_WANDB", "0")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="reslab"):
        reslab.train(TINY, tmp_path / "r0", quiet=True)
    assert calls == [] and "W&B off (set RESLAB_WANDB" in _header(caplog)


def test_wandb_on_when_asked_logs_every_metrics_line(tmp_path, monkeypatch, caplog):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    monkeypatch.setenv("RESLAB_WANDB", "my-project")
    monkeypatch.setenv("WANDB_MODE", "offline")
    with caplog.at_level(logging.INFO, logger="reslab"):
        reslab.train(TINY, tmp_path / "r", quiet=True)
    assert f"W&B ({tmp_path / 'r' / 'wandb'})" in _header(caplog)
    init = calls[0]
    assert init[0] == "init" and init[1]["project"] == "my-project" and init[1]["mode"] == "offline"
    assert init[1]["dir"] == str(tmp_path / "r") and init[1]["config"]["model"] == "resnet20"
    logs = [c for c in calls if c[0] == "log"]
    assert [c[2] for c in logs if "train_error" in c[1]] == [2, 4]  # one per metrics line, at its iteration
    assert any("val_error" in c[1] and c[2] == 4 for c in logs)
    assert all("iteration" not in c[1] for c in logs) and calls[-1] == ("finish",)


def test_wandb_asked_for_with_1_uses_the_reslab_project(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    monkeypatch.setenv("RESLAB_WANDB", "1")
    reslab.train(TINY, tmp_path / "r", quiet=True)
    assert calls[0][1]["project"] == "reslab"


def test_wandb_asked_for_but_not_installed_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RESLAB_WANDB", "p")  # the autouse fixture makes `import wandb` fail
    with caplog.at_level(logging.INFO, logger="reslab"):
        reslab.train(TINY, tmp_path / "r", quiet=True)
    assert "W&B off (pip install wandb)" in _header(caplog)


def test_wandb_init_failure_does_not_stop_the_run(tmp_path, monkeypatch, caplog):
    mod = _fake_wandb([])

    def no_login(**kw):
        raise RuntimeError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")

    mod.init = no_login
    monkeypatch.setitem(sys.modules, "wandb", mod)
    monkeypatch.setenv("RESLAB_WANDB", "p")
    with caplog.at_level(logging.INFO, logger="reslab"):
        result = reslab.train(TINY, tmp_path / "r", quiet=True)
    assert result.iterations == 4
    assert "W&B off (RuntimeError: api_key not configured" in _header(caplog)


def test_wandb_disabled_by_its_own_switch(tmp_path, monkeypatch, caplog):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    monkeypatch.setenv("RESLAB_WANDB", "p")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with caplog.at_level(logging.INFO, logger="reslab"):
        reslab.train(TINY, tmp_path / "r", quiet=True)
    assert calls == [] and "W&B off (WANDB_MODE=disabled)" in _header(caplog)
