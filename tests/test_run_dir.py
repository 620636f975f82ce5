"""Nothing lost, nothing hangs: one run per run directory (a real lock, two real processes),
one-line errors for every broken checkpoint or config before anything is written, and a
resumed run whose metrics.jsonl equals an uninterrupted one's."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import reslab
from reslab.cli import main
from reslab.errors import ReslabError
from reslab.training import checkpoint as ckpt
from reslab.training import metrics as metrics_mod
from reslab.training.config import resolve
from reslab.training.metrics import read_metrics

SRC = str(Path(reslab.__file__).parents[1])
TINY = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 512, "val_size": 256,
        "batch_size": 32, "log_every": 5, "eval_every": 10, "ckpt_every": 5, "schedule": "cosine",
        "iterations": 10, "amp": "off"}
TIMING = ("images_per_s", "elapsed")


def sets(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        out += ["--set", f"{k}={v}"]
    return out


def cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "reslab", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def snapshot(run: Path) -> dict:
    return {p.relative_to(run).as_posix(): digest(p) for p in sorted(run.rglob("*")) if p.is_file()}


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err, err
    return err


def wait_until(cond, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, f"ended early: {proc.communicate()}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _restore_determinism():
    """A run with deterministic=True switches torch's global flag on; later tests expect it off."""
    yield
    torch.use_deterministic_algorithms(False)


@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "run"
    reslab.train(TINY, run, quiet=True)
    return run


# ----------------------------------------------------------------------------- 1. one run per directory


def test_second_writer_is_refused_while_the_first_runs(tmp_path):
    """Two real processes on one run directory: the second gets one line and exit 2, and
    the first is undisturbed."""
    run = tmp_path / "run"
    first = cli(["train", "--quiet", *sets({**TINY, "iterations": 100000, "ckpt_every": 2}), "--out", str(run)])
    try:
        wait_until(lambda: (run / "checkpoints" / "latest.pt").is_file(), first)
        for argv in (["train", "--resume", str(run)],
                     ["train", "--quiet", *sets(TINY), "--out", str(run), "--overwrite"]):
            second = cli(argv)
            out, err = second.communicate(timeout=120)
            assert second.returncode == 2, (argv, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "another reslab run" in lines[0] and f"pid {first.pid}" in lines[0], err
        assert first.poll() is None, "the first run was disturbed"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 130  # SIGTERM: checkpoint, then exit


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    run = tmp_path / "run"
    p = cli(["train", "--quiet", *sets({**TINY, "iterations": 40, "ckpt_every": 2}), "--out", str(run)])
    wait_until(lambda: (run / "checkpoints" / "latest.pt").is_file(), p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (run / ".reslab.lock").read_text().strip() == str(p.pid)  # the lock file stays; the lock does not
    q = cli(["train", "--quiet", "--resume", str(run)])
    out, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    assert read_metrics(run)[-1]["iteration"] == 40


def test_fresh_run_refuses_a_run_unless_resume_or_overwrite(finished_run, capsys):
    before = snapshot(finished_run)
    with pytest.raises(ReslabError, match="already holds a finished run.*--resume.*--overwrite"):
        reslab.train(TINY, finished_run, quiet=True)
    err = one_line_error(capsys, ["train", "--quiet", *sets(TINY), "--out", str(finished_run)])
    assert "--overwrite" in err
    assert snapshot(finished_run) == before
    # --overwrite: the old run is replaced, not appended to
    assert main(["train", "--quiet", *sets({**TINY, "iterations": 5}), "--out", str(finished_run), "--overwrite"]) == 0
    assert [r["iteration"] for r in read_metrics(finished_run)] == [5]
    assert json.loads((finished_run / "config.json").read_text())["iterations"] == 5


@pytest.mark.parametrize("marker", ["config.json", "metrics.jsonl", "model.safetensors", "checkpoints"])
def test_partial_run_is_a_run(tmp_path, marker):
    run = tmp_path / "run"
    run.mkdir()
    (run / marker).mkdir() if marker == "checkpoints" else (run / marker).write_text("{}\n")
    with pytest.raises(ReslabError, match="already holds a (partial|finished) run"):
        reslab.train(TINY, run, quiet=True)
    reslab.train({**TINY, "iterations": 5}, run, overwrite=True, quiet=True)
    assert [r["iteration"] for r in read_metrics(run)] == [5]


def test_non_run_directory_is_refused_even_with_overwrite(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    for overwrite in (False, True):
        with pytest.raises(ReslabError, match="not empty .*holiday.jpg.* not a reslab run directory"):
            reslab.train(TINY, out, overwrite=overwrite, quiet=True)
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_empty_or_missing_directory_is_fine_and_resume_and_overwrite_exclude(tmp_path):
    (tmp_path / "empty").mkdir()
    assert reslab.train({**TINY, "iterations": 5}, tmp_path / "empty", quiet=True).iterations == 5
    assert reslab.train({**TINY, "iterations": 5}, tmp_path / "a" / "b" / "new", quiet=True).iterations == 5
    with pytest.raises(ReslabError, match="choose one"):
        reslab.train(None, tmp_path / "empty", resume=True, overwrite=True)


def test_out_is_checked_before_data_or_model_are_built(tmp_path, monkeypatch, capsys):
    import reslab.training.setup as setup

    monkeypatch.setattr(setup, "build_data", lambda *a: pytest.fail("data built for an unusable --out"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, match in ((afile, "is an existing file"), (afile / "sub", "is a file")):
        with pytest.raises(ReslabError, match=match):
            reslab.train(TINY, out, quiet=True)
        one_line_error(capsys, ["train", "--quiet", *sets(TINY), "--out", str(out)])
    assert afile.read_text() == "x"


def test_ddp_refusal_reaches_every_rank(tmp_path):
    """Under DDP only rank 0 claims the directory; when it refuses, rank 1 must stop too
    (with the same line), not wait forever in the first collective."""
    import socket

    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    try:
        for rank in (0, 1):
            env = {**os.environ, "PYTHONPATH": SRC, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
            procs.append(subprocess.Popen([sys.executable, "-m", "reslab", "train", "--quiet", *sets(TINY),
                                           "--out", str(out)], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for rank, (p, (_, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err[-2000:]
        assert ("not a reslab run directory" if rank == 0 else "rank 0 refused the run directory") in err, err
    assert sorted(x.name for x in out.iterdir()) == ["holiday.jpg"]


def test_failed_start_leaves_no_directory(tmp_path):
    with pytest.raises(ReslabError, match="make no batch"):
        reslab.train({**TINY, "train_subset": 10}, tmp_path / "x" / "run", quiet=True)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- 2. checkpoints and configs


def _resume_refused(run: Path, capsys, match: str) -> None:
    before = snapshot(run)
    with pytest.raises(ReslabError, match=match):
        reslab.train(None, run, resume=True, quiet=True)
    err = one_line_error(capsys, ["train", "--resume", str(run)])
    assert "latest.pt" in err or "config.json" in err, err
    after = snapshot(run)
    after.pop(".reslab.lock", None), before.pop(".reslab.lock", None)
    assert after == before, "a refused resume changed the run directory"


def _edit_latest(run: Path, edit) -> None:
    path = run / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    state = edit(state)
    torch.save(state, path)


def test_zero_byte_checkpoint(finished_run, capsys):
    (finished_run / "checkpoints" / "latest.pt").write_bytes(b"")
    _resume_refused(finished_run, capsys, "not a readable checkpoint .the file is empty")


@pytest.mark.parametrize("key", ["config", "optimizer", "rng", "iteration"])
def test_checkpoint_missing_key(finished_run, capsys, key):
    _edit_latest(finished_run, lambda s: {k: v for k, v in s.items() if k != key})
    _resume_refused(finished_run, capsys, f"lacks {key}")


def test_checkpoint_config_is_a_list(finished_run, capsys):
    _edit_latest(finished_run, lambda s: {**s, "config": [1, 2, 3]})
    _resume_refused(finished_run, capsys, "'config' must be a dict")


def test_checkpoint_garbage_rng(finished_run, capsys):
    _edit_latest(finished_run, lambda s: {**s, "rng": {**s["rng"], "torch": torch.zeros(7, dtype=torch.uint8)}})
    _resume_refused(finished_run, capsys, "RNG state is malformed")


def test_checkpoint_negative_iteration_keeps_metrics(finished_run, capsys):
    lines = (finished_run / "metrics.jsonl").read_text()
    assert lines
    _edit_latest(finished_run, lambda s: {**s, "iteration": -5})
    _resume_refused(finished_run, capsys, "iteration -5 is outside")
    assert (finished_run / "metrics.jsonl").read_text() == lines


def test_checkpoint_weights_of_another_depth(finished_run, capsys):
    other = reslab.create_model("cifar-resnet14", num_classes=10, in_channels=3, width=0.25).state_dict()
    _edit_latest(finished_run, lambda s: {**s, "model": other})
    _resume_refused(finished_run, capsys, "weights do not fit cifar-resnet8")


def test_eval_refuses_weights_of_another_depth(finished_run, capsys):
    """reslab eval loads best.pt (or latest.pt): its weights are checked against its config too."""
    other = reslab.create_model("cifar-resnet14", num_classes=10, in_channels=3, width=0.25).state_dict()
    for name in ("best.pt", "latest.pt"):
        path = finished_run / "checkpoints" / name
        state = torch.load(path, weights_only=True)
        torch.save({**state, "model": other}, path)
    err = one_line_error(capsys, ["eval", str(finished_run)])
    assert "weights do not fit cifar-resnet8" in err


def test_checkpoint_without_metrics_window_still_resumes(tmp_path):
    """Checkpoints written before the window was saved resume as before."""
    run = tmp_path / "run"
    reslab.train(TINY, run, quiet=True)
    _edit_latest(run, lambda s: {k: v for k, v in s.items() if k != "window"})
    assert reslab.train(None, run, resume=True, quiet=True).iterations == 10


def test_checkpoint_optimizer_of_another_model(finished_run, capsys):
    def edit(s):
        s["optimizer"]["param_groups"][0]["params"] = s["optimizer"]["param_groups"][0]["params"][:-3]
        return s
    _edit_latest(finished_run, edit)
    _resume_refused(finished_run, capsys, "optimizer state does not fit")


def test_checkpoint_of_another_model_in_a_run_dir_is_not_resumed(tmp_path, finished_run, capsys):
    """A consistent checkpoint of another run (another model) copied into this run: it must
    not resume as that model, nor rewrite this run's config.json."""
    other = tmp_path / "other"
    reslab.train({**TINY, "model": "cifar-resnet14"}, other, quiet=True)
    (finished_run / "checkpoints" / "latest.pt").write_bytes((other / "checkpoints" / "latest.pt").read_bytes())
    capsys.readouterr()  # drop the other run's training log
    _resume_refused(finished_run, capsys, "belongs to another run.*model")
    assert json.loads((finished_run / "config.json").read_text())["model"] == "cifar-resnet8"


def _write(path: Path, data) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize("name, content, match", [
    ("bin.json", b"\xff\xfe\x00\x01\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a UTF-8 text file"),
    ("list.json", "[1, 2, 3]", "must hold a table of config keys, got a list"),
    ("str.json", '"resnet20"', "must hold a table of config keys, got a str"),
    ("deep.json", '{"lr": ' + "[" * 100000 + "]" * 100000 + "}", "cannot parse"),
    ("deep2.json", '{"lr": ' + "[" * 500 + "1" + "]" * 500 + "}", "config key 'lr'"),
    ("digits.json", '{"seed": ' + "9" * 5000 + "}", "cannot parse"),
    ("digits.toml", "seed = " + "9" * 5000, "cannot parse"),
    ("bin.toml", b"\x00\x01\x02" * 100, "cannot parse"),
])
def test_bad_config_files_are_one_line(tmp_path, capsys, name, content, match):
    path = _write(tmp_path / name, content)
    with pytest.raises(ReslabError, match=match):
        resolve(file=path)
    err = one_line_error(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "run")])
    assert len(err) < 400
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("over, match", [
    ({"seed": "-1"}, "seed must be in 0..2\\*\\*32-1"),
    ({"seed": "9" * 5000}, "config key 'seed'"),
    ({"width": "100000"}, "width must be a multiplier"),
    ({"width": "nan"}, "config key 'width'"),
    ({"lr": "inf"}, "config key 'lr'"),
    ({"iterations": str(10 ** 12)}, "iterations must be <="),
    ({"model": "cifar-resnet2000000"}, "deeper than the limit of 2404 layers"),
    ({"model": "cifar-resnet" + "8" * 5000}, "deeper than the limit"),
    ({"model": "mlp"}, "scalar net of the shattered-gradients experiment"),
    ({"model": "cifar-resnet9"}, "6n\\+2"),
])
def test_bad_config_values_are_one_line_and_fast(tmp_path, capsys, over, match):
    t0 = time.perf_counter()
    with pytest.raises(ReslabError, match=match):
        resolve(overrides=over)
    argv = ["train", *sets(over), "--out", str(tmp_path / "run")]
    err = one_line_error(capsys, argv)
    assert len(err) < 400 and time.perf_counter() - t0 < 10
    assert not (tmp_path / "run").exists()


def test_train_model_mlp_flag(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--model", "mlp", "--out", str(tmp_path / "run")])
    assert "ResNet or plain net" in err


# ----------------------------------------------------------------------------- 5. honest resume of metrics


def test_resumed_metrics_equal_uninterrupted_line_for_line(tmp_path, monkeypatch):
    """Interrupted mid-window (iteration 7 of a 5-iteration log window): the resumed run's
    metrics.jsonl equals the uninterrupted one's, apart from timing fields."""
    cfg = {**TINY, "deterministic": True, "ckpt_every": 0, "iterations": 20}
    reslab.train(cfg, tmp_path / "full", quiet=True)

    real_step, seen = metrics_mod.MetricsLogger.step, []

    def step(self, n=1):
        seen.append(n)
        if len(seen) == 7:
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C: the loop checkpoints at iteration 7
        real_step(self, n)

    monkeypatch.setattr(metrics_mod.MetricsLogger, "step", step)
    cut = reslab.train(cfg, tmp_path / "cut", quiet=True)
    assert cut.interrupted and cut.iterations == 7
    monkeypatch.setattr(metrics_mod.MetricsLogger, "step", real_step)
    assert ckpt.load(tmp_path / "cut" / "checkpoints" / "latest.pt")["window"]["n"] == 2
    reslab.train(None, tmp_path / "cut", resume=True, quiet=True)

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]

    full, resumed = strip(read_metrics(tmp_path / "full")), strip(read_metrics(tmp_path / "cut"))
    assert [r["iteration"] for r in full] == [5, 10, 15, 20]
    assert resumed == full


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_resume_sweeps_temporaries_of_killed_writers(tmp_path):
    """A kill -9 during a checkpoint write leaves .latest.pt.tmpPID; the next resume removes it
    (its writer is dead) and keeps one whose writer is alive (it may still be writing)."""
    from reslab.training import rundir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"checkpoint")
    dead, alive = _dead_pid(), os.getpid()
    leftover = run / "checkpoints" / f".latest.pt.tmp{dead}"
    leftover.write_bytes(b"\0" * 2_200_000)  # a resnet20 checkpoint's size
    root_leftover = run / f".metrics.jsonl.tmp{dead}"
    root_leftover.write_text("{}\n")
    live = run / "checkpoints" / f".best.pt.tmp{alive}"
    live.write_bytes(b"being written")
    unrelated = run / "checkpoints" / ".notes.tmpabc"
    unrelated.write_text("not ours")
    claimed = rundir.claim(run, resume=True)
    claimed.release()
    assert not leftover.exists() and not root_leftover.exists()
    assert live.exists() and unrelated.exists() and (run / "checkpoints" / "latest.pt").read_bytes() == b"checkpoint"


def test_refused_claim_sweeps_nothing(tmp_path):
    """Without --resume the directory is refused and left exactly as it was."""
    from reslab.training import rundir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    leftover = run / "checkpoints" / f".latest.pt.tmp{_dead_pid()}"
    leftover.write_bytes(b"x")
    with pytest.raises(ReslabError, match="partial run"):
        rundir.claim(run)
    assert leftover.exists()


def test_sweep_after_a_real_kill_during_the_checkpoint_write(tmp_path):
    """The real thing: a process killed (SIGKILL) inside atomic_write leaves its temporary file;
    fileio.sweep_temporaries removes it once the process is gone, and only then."""
    from reslab.fileio import sweep_temporaries

    target = tmp_path / "latest.pt"
    code = ("import sys, time; from reslab.fileio import atomic_write\n"
            "def slow(f):\n    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
            f"atomic_write({str(target)!r}, slow)\n")
    env = {**os.environ, "PYTHONPATH": SRC}
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
        tmp = tmp_path / f".latest.pt.tmp{p.pid}"
        assert tmp.exists()
        assert sweep_temporaries(tmp_path) == []  # the writer is alive: its file stays
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert tmp.exists() and not target.exists()  # what kill -9 leaves
    assert sweep_temporaries(tmp_path) == [tmp] and not tmp.exists()
