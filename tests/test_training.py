"""Training end to end: real learning, exact resume after kill -9, signals, NaN stop,
malicious checkpoints, DDP equivalence, eval."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import reslab
from reslab.cli import main
from reslab.errors import ReslabError
from reslab.training.checkpoint import load as load_ckpt
from reslab.training.metrics import read_metrics

FMNIST = Path("/usr/share/datasets/fashion-mnist")
# A tiny net and a tiny synthetic dataset: each run takes a second or two on 2 cores.
TINY = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 512, "val_size": 256,
        "batch_size": 32, "log_every": 5, "eval_every": 10, "ckpt_every": 5, "schedule": "cosine",
        "iterations": 30, "amp": "off"}
SRC = str(Path(reslab.__file__).parents[1])


def sets(cfg: dict) -> list[str]:
    out = []
    for k, v in cfg.items():
        out += ["--set", f"{k}={v}"]
    return out


def cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "reslab", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def free_port() -> int:
    """A TCP port free right now on localhost, for a DDP rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_checkpoint(run: Path, proc: subprocess.Popen, min_iteration: int, timeout: float = 120):
    latest = run / "checkpoints" / "latest.pt"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"training ended early: {proc.communicate()}"
        if latest.exists():
            try:
                if torch.load(latest, weights_only=True)["iteration"] >= min_iteration:
                    return
            except Exception:  # noqa: BLE001 - being replaced; atomic rename means retry sees a whole file
                pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Fashion-MNIST not installed (CI installs dataset-fashion-mnist)")
def test_short_real_training_lowers_training_error(tmp_path):
    cfg = {**TINY, "dataset": "fashion-mnist", "train_subset": 2048, "val_size": 500, "batch_size": 64,
           "width": 0.5, "iterations": 60, "schedule": "onecycle", "lr": 0.1, "log_every": 10, "eval_every": 60}
    result = reslab.train(cfg, tmp_path / "run", quiet=True)
    rows = [r for r in read_metrics(tmp_path / "run") if "train_error" in r]
    assert rows[0]["train_error"] > 0.5  # ~0.9 at chance for 10 classes
    assert rows[-1]["train_error"] < rows[0]["train_error"] - 0.2
    assert result.val_error is not None and result.val_error < 0.6
    keys = {"iteration", "epoch", "lr", "train_loss", "train_error", "images_per_s", "grad_norm", "elapsed"}
    assert keys <= set(rows[-1]) and "val_error" in rows[-1] and "test_error" not in rows[-1]


def test_kill_9_then_resume_is_bit_identical(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    args = ["train", "--quiet", *sets({**TINY, "deterministic": True})]
    p = cli(args + ["--out", str(full)])
    assert p.wait(timeout=300) == 0, p.communicate()
    p = cli(args + ["--out", str(killed)])
    wait_for_checkpoint(killed, p, min_iteration=12)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / "model.safetensors").exists()
    p = cli(["train", "--quiet", "--resume", str(killed)])
    assert p.wait(timeout=300) == 0, p.communicate()
    a, b = load_file(full / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    # The metrics log is the same too: lines after the checkpoint were dropped and rewritten.
    its = [r["iteration"] for r in read_metrics(killed)]
    assert its == sorted(set(its)) and its[-1] == TINY["iterations"]


def test_sigterm_saves_a_checkpoint_then_resume_finishes(tmp_path):
    run = tmp_path / "run"
    p = cli(["train", "--quiet", *sets({**TINY, "iterations": 100000, "ckpt_every": 0}), "--out", str(run)])
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 130
    state = load_ckpt(run / "checkpoints" / "latest.pt")
    assert state["iteration"] >= 5
    assert "resume" in p.communicate()[1]


def test_nan_stops_with_iteration_and_layer_and_keeps_last_checkpoint(tmp_path):
    cfg = {**TINY, "lr": 1e30, "schedule": "constant", "ckpt_every": 1, "weight_decay": 0}
    with pytest.raises(reslab.training.TrainingDiverged, match=r"iteration \d+ \(first non-finite gradient: \S+"):
        reslab.train(cfg, tmp_path / "run", quiet=True)
    state = load_ckpt(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    # and through the CLI: a one-line message, exit code 3
    p = cli(["train", "--quiet", *sets(cfg), "--out", str(tmp_path / "cli")])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 3 and "non-finite" in err and "Traceback" not in err


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    _Evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": evil}, path)
    with pytest.raises(ReslabError, match="refused"):
        load_ckpt(path)
    assert not marker.exists()
    p = cli(["eval", str(path)])
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "refused" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()
    # a plain pickle that is no checkpoint at all
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ReslabError):
        load_ckpt(junk)


def test_eval_reports_error_per_class_and_confusion(tmp_path, capsys):
    reslab.train(TINY, tmp_path / "run", quiet=True)
    assert main(["eval", str(tmp_path / "run"), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "error" in out and "class9" in out
    res = json.loads((tmp_path / "run" / "eval_test.json").read_text())
    assert res["n"] == 2000 and len(res["per_class_accuracy"]) == 10
    assert sum(map(sum, res["confusion"])) == 2000
    assert (tmp_path / "run" / "confusion_test.png").stat().st_size > 1000
    direct = reslab.evaluate(tmp_path / "run", split="test")
    assert direct["error"] == pytest.approx(res["error"])


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    for args in (["train", "--model", "resnet57", "--out", str(tmp_path / "a")],
                 ["train", "--set", "lr=-1", "--out", str(tmp_path / "b")],
                 ["train", "--dataset", "imagenet", "--out", str(tmp_path / "c")],
                 ["train", "--resume", str(tmp_path / "nothing")],
                 ["eval", str(tmp_path / "nothing")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err, (args, err)
    for name in "abc":
        assert not (tmp_path / name).exists(), f"a failed start left {name}/ behind"


def _ddp_worker(rank: int, world: int, port: int, cfg: dict, out: str):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    result = reslab.train(cfg, Path(out) / "ddp", quiet=True)
    torch.save({k: v.detach().clone() for k, v in result.model.state_dict().items()}, Path(out) / f"rank{rank}.pt")


def test_ddp_two_gloo_ranks_match_each_other_and_one_process(tmp_path):
    import torch.multiprocessing as mp

    cfg = {**TINY, "augment": False, "iterations": 4, "eval_every": 0, "ckpt_every": 0, "channels_last": False,
           "log_every": 2}
    mp.start_processes(_ddp_worker, args=(2, free_port(), cfg, str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    params = [k for k in r0 if "running" not in k and "num_batches" not in k]
    for k in params:
        assert torch.equal(r0[k], r1[k]), f"ranks disagree on {k}"
    # One process, same global batch, 2 micro-batches: BN sees the same per-rank batches.
    single = reslab.train({**cfg, "accum_steps": 2}, tmp_path / "single", quiet=True).model.state_dict()
    for k in params:
        # fp rounding differs (allreduce vs accumulation order) and SGD+BN amplify it a little
        # per step; a wrong shard or BN batch would differ by ~1e-2.
        torch.testing.assert_close(single[k], r0[k], rtol=1e-3, atol=1e-4, msg=f"single vs DDP differ on {k}")
    metrics = read_metrics(tmp_path / "ddp")
    assert [r["iteration"] for r in metrics] == [2, 4]  # one writer (rank 0): no duplicated lines


def test_too_few_images_for_one_batch_is_a_clean_error(tmp_path):
    with pytest.raises(ReslabError, match="make no batch"):
        reslab.train({**TINY, "train_subset": 10}, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_fresh_run_does_not_append_to_a_killed_attempts_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"iteration": 5, "train_error": 0.9}\n{"iteration": 10, "trai')
    with pytest.raises(ReslabError, match="already holds a partial run"):  # a run dir is never silently reused
        reslab.train({**TINY, "iterations": 10}, run, quiet=True)
    reslab.train({**TINY, "iterations": 10}, run, overwrite=True, quiet=True)
    its = [r["iteration"] for r in read_metrics(run)]
    assert its == [5, 10]  # this run's lines only, no duplicates, no broken line


def test_resume_refuses_new_settings(tmp_path, capsys):
    reslab.train({**TINY, "iterations": 5}, tmp_path / "run", quiet=True)
    capsys.readouterr()  # drop the training log
    assert main(["train", "--resume", str(tmp_path / "run"), "--iterations", "80"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--iterations" in err


needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")),
    reason="torch.compile's CPU backend needs a C++ compiler")


@needs_compiler
def test_compiled_step_trains_like_eager(tmp_path):
    """compile=True compiles model + loss + error count as one graph (inductor on the CPU
    here); it must follow the same trajectory as eager, up to float reassociation."""
    cfg = {**TINY, "iterations": 10, "log_every": 5, "eval_every": 0, "ckpt_every": 0, "channels_last": False}
    runs = {}
    for compiled in (False, True):
        res = reslab.train({**cfg, "compile": compiled}, tmp_path / f"compile-{compiled}", quiet=True)
        assert res.iterations == 10 and not res.interrupted
        runs[compiled] = [(r["train_loss"], r["train_error"]) for r in read_metrics(tmp_path / f"compile-{compiled}")
                          if "train_loss" in r]
    assert len(runs[True]) == len(runs[False]) == 2
    for (loss_e, err_e), (loss_c, err_c) in zip(runs[False], runs[True]):
        assert loss_c == pytest.approx(loss_e, rel=1e-3)
        assert abs(err_c - err_e) <= 2 / (32 * 5)  # at most two of a window's 160 predictions differ


@needs_compiler
def test_ddp_with_compile_matches_eager_ddp(tmp_path):
    """Under DDP, compile=True compiles the wrapped module (DDPOptimizer's pattern): both ranks
    agree, and the weights match eager DDP up to float reassociation."""
    import torch.multiprocessing as mp

    cfg = {**TINY, "augment": False, "iterations": 4, "eval_every": 0, "ckpt_every": 0, "channels_last": False,
           "log_every": 2}
    states = {}
    for compiled in (False, True):
        out = tmp_path / f"compile-{compiled}"
        mp.start_processes(_ddp_worker, args=(2, free_port(), {**cfg, "compile": compiled}, str(out)), nprocs=2,
                           start_method="spawn")
        states[compiled] = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    eager, (c0, c1) = states[False][0], states[True]
    params = [k for k in eager if "running" not in k and "num_batches" not in k]
    for k in params:
        assert torch.equal(c0[k], c1[k]), f"compiled ranks disagree on {k}"
        torch.testing.assert_close(c0[k], eager[k], rtol=1e-3, atol=1e-4, msg=f"compiled vs eager DDP differ on {k}")


def test_sigterm_to_one_ddp_rank_stops_both_cleanly(tmp_path):
    """A signal to one rank (here the non-writing rank 1) must stop every rank at the same
    iteration; otherwise the others would hang in the next all-reduce."""
    run = tmp_path / "run"
    procs: list[subprocess.Popen] = []
    try:
        _sigterm_one_rank(procs, run, free_port())
    finally:
        for p in procs:
            p.kill()


def _sigterm_one_rank(procs: list, run: Path, port: int) -> None:
    for rank in (0, 1):
        env = {**os.environ, "PYTHONPATH": SRC, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "reslab", "train", "--quiet", *sets({**TINY, "iterations": 100000, "ckpt_every": 0}),
             "--out", str(run)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.poll() for p in procs]
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=60) for p in procs]
    assert codes == [130, 130], [p.communicate()[1][-2000:] for p in procs]
    state = load_ckpt(run / "checkpoints" / "latest.pt")
    assert state["iteration"] >= 5
    assert "another rank" in procs[0].communicate()[1]


def test_probe_every_logs_per_module_gradient_norms(tmp_path):
    """probe_every=N: per-module gradient norms in metrics.jsonl at multiples of N, merged
    into the metrics line of that iteration or on a line of their own; off by default."""
    cfg = {**TINY, "iterations": 12, "log_every": 4, "eval_every": 0, "ckpt_every": 0, "probe_every": 6}
    reslab.train(cfg, tmp_path / "run", quiet=True)
    rows = read_metrics(tmp_path / "run")
    probed = {r["iteration"]: r["grad_norms"] for r in rows if "grad_norms" in r}
    assert sorted(probed) == [6, 12]
    its = [r["iteration"] for r in rows]
    assert its == sorted(set(its)) == [4, 6, 8, 12]  # 6: a line of its own; 12: the metrics line
    assert "train_loss" in next(r for r in rows if r["iteration"] == 12)
    norms = probed[6]
    assert "stem.conv" in norms or any(k.startswith("stem") for k in norms), norms
    assert all(isinstance(v, float) and v >= 0 for v in norms.values())
    assert len(norms) == len({n for n, m in reslab.create_model("cifar-resnet8", width=0.25).named_modules()
                              if any(True for _ in m.parameters(recurse=False))})
    plain = reslab.train({**cfg, "probe_every": 0}, tmp_path / "off", quiet=True)
    assert plain.iterations == 12 and not any("grad_norms" in r for r in read_metrics(tmp_path / "off"))
