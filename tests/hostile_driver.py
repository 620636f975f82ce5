"""Runs many hostile-input cases in one process (one import of torch) and prints one JSON
object per case.  Not a test module: tests/test_hostile_inputs.py starts it under a memory
ceiling and a time limit and checks what it printed.

    python tests/hostile_driver.py WORKDIR [--ro-mounted]

Each case builds its files under WORKDIR, calls ``reslab.cli.main(argv)`` with stderr
captured, and reports the exit code, the stderr text, an exception that escaped ``main``
(which, outside this driver, would be a traceback), and whether the folder it names was
left unchanged.  A read-only folder is a real read-only bind mount when the driver runs in
its own mount namespace (``--ro-mounted``, see the test); otherwise every write under it
fails with EROFS by patching the functions that write (``open``, ``os.*``).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import torch

import reslab
from reslab.cli import main

TINY = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 64, "val_size": 32,
        "batch_size": 16, "log_every": 2, "eval_every": 4, "ckpt_every": 2, "schedule": "cosine",
        "iterations": 4, "amp": "off"}


def snapshot(folder: Path) -> dict[str, str | None]:
    """Every path under ``folder`` with the SHA-256 of each file (None for a directory)."""
    if folder.is_file():
        return {".": hashlib.sha256(folder.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(folder.rglob("*")):
        out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    return out


def sets(cfg: dict) -> list[str]:
    return [a for k, v in cfg.items() for a in ("--set", f"{k}={v}")]


def _copy_run(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


# ----------------------------------------------------------------------------- faults


@contextlib.contextmanager
def read_only(folder: Path, mounted: bool):
    """Writes under ``folder`` fail with EROFS (a real mount, or patched write functions)."""
    if mounted:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    root = str(folder.resolve())

    def inside(p) -> bool:
        try:
            return os.path.abspath(os.fsdecode(p)).startswith(root)
        except TypeError:
            return False

    def erofs(p):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))

    real = {"open": builtins.open, "os_open": os.open, "mkdir": os.mkdir, "unlink": os.unlink,
            "replace": os.replace, "rename": os.rename, "rmdir": os.rmdir}

    def fake_open(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and inside(file) and set(mode) & set("wax+"):
            erofs(file)
        return real["open"](file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            erofs(path)
        return real["os_open"](path, flags, *a, **k)

    def guard(name):
        def f(p, *a, **k):
            if inside(p):
                erofs(p)
            return real[name](p, *a, **k)
        return f

    patches = [(builtins, "open", fake_open), (io, "open", fake_open), (os, "open", fake_os_open)]
    patches += [(os, n, guard(n)) for n in ("mkdir", "unlink", "rmdir")]
    patches += [(os, n, lambda s, d, *a, _n=n, **k: erofs(d) if inside(d) or inside(s) else real[_n](s, d, *a, **k))
                for n in ("replace", "rename")]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    try:
        yield
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


@contextlib.contextmanager
def disk_full_on_checkpoint(after: int):
    """``torch.save`` into a checkpoint fails with ENOSPC (after writing a few bytes, as a
    full disk does) from its ``after``-th call on."""
    real, calls = torch.save, [0]

    def save(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] >= after and hasattr(f, "write"):
            f.write(b"PK\x03\x04partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *a, **k)

    torch.save = save
    try:
        yield
    finally:
        torch.save = real


@contextlib.contextmanager
def fake_published_weights():
    """``weights import`` without the network or the published file: the hash-checked
    download is replaced by an untrained model with the source's real card."""
    from reslab.weights import load as WL

    def pretrained(source, model, *, file=None, log=None):
        src, _ = WL.get_pinned(source, model)
        net = reslab.create_model(model, num_classes=src.num_classes).eval()
        return WL.LoadedModel(net, None, src.card(model), WL.imported_arch(source, model), Path(file or "x"))

    real = WL.pretrained
    WL.pretrained = pretrained
    try:
        yield
    finally:
        WL.pretrained = real


# ----------------------------------------------------------------------------- running


def run_case(name: str, argv: list[str], watch: Path | None, fault=None) -> dict:
    before = snapshot(watch) if watch is not None and watch.exists() else None
    existed = watch.exists() if watch is not None else None
    err, escaped = io.StringIO(), None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            with fault or contextlib.nullcontext():
                rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except BaseException as e:  # noqa: BLE001 - exactly what the suite looks for
            rc, escaped = None, "".join(traceback.format_exception_only(type(e), e)).strip()
    after = snapshot(watch) if watch is not None and watch.exists() else None
    return {"case": name, "rc": rc, "stderr": err.getvalue(), "escaped": escaped,
            "unchanged": None if watch is None else (before == after and existed == watch.exists())}


def cases(work: Path, mounted: bool):
    """(name, argv, watched folder, fault, extra check) for every case."""
    run = work / "run"
    reslab.train({**TINY}, run, quiet=True)
    good = (run / "metrics.jsonl").read_text().splitlines()

    def bad_metrics(tag: str, line: str | bytes) -> Path:
        d = _copy_run(run, work / f"run-{tag}")
        body = "\n".join(good[:1]).encode() + b"\n" + (line if isinstance(line, bytes) else line.encode()) + b"\n" \
            + "\n".join(good[1:]).encode() + b"\n"
        (d / "metrics.jsonl").write_bytes(body)
        return d

    for tag, line in (("list", "[1]"), ("nan", '{"iteration": NaN, "train_error": 0.5}'),
                      ("inf", '{"iteration": Infinity, "train_error": 0.5}'),
                      ("utf8", b'{"iteration": 3, "train_error": 0.5, "note": "\xff\xfe"}')):
        d = bad_metrics(tag, line)
        yield f"plot metrics {tag}", ["plot", str(d), "--out", str(work / f"curves-{tag}.png")], d, None
        yield f"resume metrics {tag}", ["train", "--resume", str(d), "--quiet"], d, None

    ro = work / "readonly"
    ro.mkdir()
    (ro / "keep.txt").write_text("was here\n")
    yield "plot into read-only folder", ["plot", str(run), "--out", str(ro / "curves.png")], ro, read_only(ro, mounted)
    yield "eval into read-only folder", ["eval", str(run), "--split", "test", "--out", str(ro / "eval")], ro, \
        read_only(ro, mounted)
    if mounted:  # safetensors writes from Rust, past the patched functions: only a real mount stops it
        yield "weights import into read-only folder", \
            ["weights", "import", "akamaster", "resnet20", "--out", str(ro / "r20.safetensors")], ro, \
            _both(fake_published_weights(), read_only(ro, mounted))
    # The checkpoint at iteration 2 is written; the disk is full from the next one on.
    yield "disk full during checkpoint", ["train", *sets(TINY), "--out", str(work / "run-full"), "--quiet"], None, \
        disk_full_on_checkpoint(after=2)
    yield "pad_to 100000", ["train", *sets({**TINY, "pad_to": 100000}), "--out", str(work / "pad"), "--quiet"], \
        work / "pad", None
    target = work / "a-file"
    target.write_text("not a folder\n")
    yield "--out names a file (train)", ["train", *sets(TINY), "--out", str(target), "--quiet"], target, None
    yield "--out names a file (eval)", ["eval", str(run), "--out", str(target)], target, None
    from datafiles import make_cifar10

    make_cifar10(work / "cifar-ok", per_batch=2, archive=True)
    yield "cifar10 as published (ok)", ["data", "info", "cifar10", "--data-dir", str(work / "cifar-ok")], None, None
    bad = work / "cifar-bad" / "cifar-10-batches-py"
    make_cifar10(bad.parent, per_batch=2)
    blob = (bad / "test_batch").read_bytes()
    (bad / "test_batch").write_bytes(blob.replace(b"U\x02u1K\x00K\x01", b"U\x02u1K\x02K\x01"))
    yield "cifar dtype flag 2", ["data", "info", "cifar10", "--data-dir", str(bad.parent)], bad, None
    yield "--model with newline", ["train", "--model", "cifar-resnet20\n", "--dataset", "synthetic", "--out",
                                   str(work / "nl2"), "--quiet"], work / "nl2", None


@contextlib.contextmanager
def _both(a, b):
    with a, b:
        yield


def extra_checks(work: Path) -> dict:
    """What the disk-full case must leave: the last good checkpoint, loadable, and no temporary file."""
    from reslab.training import checkpoint as ckpt

    ck = work / "run-full" / "checkpoints"
    state = ckpt.load(ck / "latest.pt")
    return {"latest_iteration": state["iteration"], "leftovers": sorted(p.name for p in ck.iterdir()
                                                                         if ".tmp" in p.name)}


def main_driver(argv: list[str]) -> int:
    work, mounted = Path(argv[0]), "--ro-mounted" in argv
    torch.set_num_threads(1)
    for name, args, watch, fault in cases(work, mounted):
        print(json.dumps(run_case(name, args, watch, fault)), flush=True)
    print(json.dumps({"case": "disk full: what is left", **extra_checks(work)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_driver(sys.argv[1:]))
