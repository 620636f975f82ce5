"""Hostile and broken input end in one line and exit code 2: no traceback, nothing half-written.

The cases run in child processes under a 3 GB address-space ceiling (RLIMIT_AS) and a time
limit.  Most run together in one driver process (tests/hostile_driver.py: one import of
torch); a few run as the real ``python -m reslab`` command.  Read-only folders are real
read-only bind mounts when ``unshare -rm`` works here, else patched writes that fail with
EROFS (the weights case needs the real mount: safetensors is not patched).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import reslab

SRC = str(Path(reslab.__file__).parents[1])
TESTS = Path(__file__).parent
MEM_LIMIT = 3 << 30


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(TESTS)]), "OMP_NUM_THREADS": "1",
           "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", "/nonexistent-cache")}
    env.pop("RESLAB_DATA", None)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=_limits)


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    (work / "cache").mkdir()
    mounted = _can_mount()
    cmd = [sys.executable, str(TESTS / "hostile_driver.py"), str(work)] + (["--ro-mounted"] if mounted else [])
    env_cache = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # nothing reaches the user's cache
    try:
        proc = _run((["unshare", "-rm"] if mounted else []) + cmd, timeout=180)
    finally:
        if env_cache is None:
            os.environ.pop("XDG_CACHE_HOME")
        else:
            os.environ["XDG_CACHE_HOME"] = env_cache
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in rows}, mounted


def _one_error_line(stderr: str, command: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(f"reslab {command}: error: "), stderr
    assert stderr.endswith(errors[0] + "\n"), stderr  # the error is the last thing said
    return errors[0]


# case -> (command, what the line must name, must the folder be unchanged, only one stderr line)
EXPECTED = {
    **{f"plot metrics {t}": ("plot", [f"run-{t}/metrics.jsonl", "line 2", why], True, True)
       for t, why in (("list", "a JSON list"), ("nan", "iteration nan"), ("inf", "iteration inf"),
                      ("utf8", "not UTF-8"))},
    **{f"resume metrics {t}": ("train", [f"run-{t}/metrics.jsonl", "line 2", why], True, True)
       for t, why in (("list", "a JSON list"), ("nan", "iteration nan"), ("inf", "iteration inf"),
                      ("utf8", "not UTF-8"))},
    "plot into read-only folder": ("plot", ["readonly", "curves.png", "Read-only file system"], True, True),
    "eval into read-only folder": ("eval", ["readonly", "Read-only file system"], True, True),
    "weights import into read-only folder": ("weights", ["readonly", "r20.safetensors", "Read-only file system"],
                                             True, True),
    "disk full during checkpoint": ("train", ["run-full/checkpoints", "No space left on device"], None, False),
    "pad_to 100000": ("train", ["pad_to", "1..512", "100000"], True, True),
    "--out names a file (train)": ("train", ["--out", "a-file", "not a directory"], True, True),
    "--out names a file (eval)": ("eval", ["a-file", "a file is where a folder is needed"], True, True),
    "--model with newline": ("train", ["unknown model 'cifar-resnet20\\n'"], True, True),
    "cifar dtype flag 2": ("data", ["cifar-10-batches-py/test_batch", "numpy dtype 'u1'"], True, True),
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hostile_case(driver, case):
    rows, mounted = driver
    if case == "weights import into read-only folder" and not mounted:
        pytest.skip("needs a real read-only mount (unshare -rm is not available here)")
    command, names, unchanged, single = EXPECTED[case]
    r = rows[case]
    assert r["escaped"] is None, r["escaped"]
    assert r["rc"] == 2, r
    line = _one_error_line(r["stderr"], command)
    for text in names:
        assert text in line, (text, line)
    if single:
        assert r["stderr"].count("\n") == 1, r["stderr"]
    if unchanged is not None:
        assert r["unchanged"] is True, r


def test_disk_full_keeps_the_last_good_checkpoint(driver):
    left = driver[0]["disk full: what is left"]
    assert left["latest_iteration"] == 2  # written before the disk filled; the failed write did not touch it
    assert left["leftovers"] == []  # no .latest.pt.tmpPID / .best.pt.tmpPID left behind


def test_published_cifar_bytes_load_from_the_cli(driver):
    r = driver[0]["cifar10 as published (ok)"]
    assert r["rc"] == 0 and r["escaped"] is None, r


@pytest.mark.parametrize("args,names", [
    (["train", "--model", "cifar-resnet20\n", "--dataset", "synthetic", "--iterations", "1"], ["unknown model"]),
    (["train", "--model", "cifar-resnet8", "--dataset", "synthetic", "--set", "pad_to=100000"], ["pad_to", "1..512"]),
])
def test_real_command(tmp_path, args, names):
    """The installed command itself, not main() in a driver: stderr is exactly one line."""
    out = tmp_path / "out"
    proc = _run([sys.executable, "-m", "reslab", *args, "--out", str(out)], timeout=120)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr, args[0])
    assert proc.stderr.count("\n") == 1 and all(n in line for n in names), proc.stderr
    assert not out.exists()


def test_real_command_damaged_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(b'{"iteration": 1, "train_error": 0.5}\n\xff\xfe\n{"iteration": 2}\n')
    before = (run / "metrics.jsonl").read_bytes()
    proc = _run([sys.executable, "-m", "reslab", "plot", str(run), "--out", str(tmp_path / "c.png")], timeout=120)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr, "plot")
    assert proc.stderr.count("\n") == 1 and "metrics.jsonl: line 2 is not UTF-8" in line
    assert (run / "metrics.jsonl").read_bytes() == before and not (tmp_path / "c.png").exists()
