"""Parsers with budgets, downloads with limits, and splits from one place.

Each hostile input runs in a subprocess under a memory ceiling (RLIMIT_AS) and a time
limit, so a parser that would blow up or hang fails the test instead of the machine."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from datafiles import (IMAGES_MAGIC, REAL_FETCH, cifar_batch, idx_bytes, isolated_data_env,  # noqa: F401
                       make_cifar10, make_idx_dataset, write_tar)

from reslab.data import DATASETS, FileSpec, load_arrays
from reslab.data import store
from reslab.data.cifar_format import parse_cifar_batch, read_tar_members
from reslab.errors import DataFormatError, ReslabError

ROOT = Path(__file__).resolve().parents[1]


def limited(code: str, *, seconds: float = 20, mem_mb: int = 768) -> tuple[int, str]:
    """Run ``code`` in a fresh Python whose address space may grow by ``mem_mb`` beyond what
    its imports mapped; returns (exit code, last output line).  A timeout is a failure."""
    prog = textwrap.dedent(f"""
        import resource, sys
        sys.path[:0] = [{str(ROOT / 'src')!r}, {str(ROOT / 'tests')!r}]
        import numpy as np
        import reslab.data.formats as F
        import reslab.data.cifar_format as C
        from reslab.errors import DataFormatError
        vm = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize'))
        resource.setrlimit(resource.RLIMIT_AS, (vm + ({mem_mb} << 20),) * 2)
    """) + textwrap.dedent(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    try:
        p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=seconds, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no answer within {seconds} s (a hang or a quadratic parser)")
    out = (p.stdout + p.stderr).strip().splitlines()
    return p.returncode, out[-1] if out else ""


def refused(code: str, match: str, **kw) -> None:
    """``code`` sets ``blob``/``path`` and calls a parser in ``call``; it must raise a one-line
    DataFormatError matching ``match``, quickly and within the memory ceiling."""
    rc, last = limited(textwrap.dedent(code) + textwrap.dedent("""
        try:
            call()
        except DataFormatError as err:
            assert "\\n" not in str(err)
            print("REFUSED", err)
        else:
            print("ACCEPTED")
    """), **kw)
    assert rc == 0 and last.startswith("REFUSED"), last
    import re
    assert re.search(match, last), last


# ----------------------------------------------------------------------------- gzip


def test_many_empty_gzip_members_are_linear():
    """100,000 empty members before the data: every member used to copy the rest of the file
    (quadratic, minutes); now seconds."""
    rc, last = limited("""
        import gzip, time
        from datafiles import idx_bytes, IMAGES_MAGIC
        blob = gzip.compress(b"", mtime=0) * 100_000 + gzip.compress(idx_bytes(np.ones((2, 3, 3), np.uint8), IMAGES_MAGIC))
        t = time.perf_counter()
        x = F.parse_idx_images(blob, "f")
        print("OK", x.shape, round(time.perf_counter() - t, 2))
    """, seconds=30)
    assert rc == 0 and last.startswith("OK (2, 1, 3, 3)"), last
    assert float(last.split()[-1]) < 10


def test_gzip_bomb_is_refused_by_the_declared_size_not_after_inflating():
    """An IDX header for 3 images of 4x4, then 2 GiB of zeros in 1 MiB members (a 2 MB file):
    refused after the header's 64 bytes, inside a 256 MB memory ceiling."""
    refused("""
        import gzip
        from datafiles import idx_bytes, IMAGES_MAGIC
        small = idx_bytes(np.arange(48, dtype=np.uint8).reshape(3, 4, 4), IMAGES_MAGIC)
        blob = gzip.compress(small, mtime=0) + gzip.compress(b"\\0" * (1 << 20), mtime=0) * 2048
        call = lambda: F.parse_idx_images(blob, "bomb.gz")
    """, r"bomb\.gz: inflates to more than the 64 bytes its header declares", mem_mb=256, seconds=30)


def test_gzip_header_declaring_terabytes_is_refused_before_inflating():
    refused("""
        import gzip
        head = (0x803).to_bytes(4, "big") + (1 << 31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        blob = gzip.compress(head + b"\\0" * 1000, mtime=0)
        call = lambda: F.parse_idx_images(blob, "big.gz")
    """, r"big\.gz: .*declares .* bytes, more than|big\.gz: declares", mem_mb=128)


def test_gzip_trailing_garbage_is_an_error():
    from reslab.data.formats import gunzip

    with pytest.raises(DataFormatError, match="trailing bytes after the gzip data"):
        gunzip(gzip.compress(b"abc") + b"junk", "f")
    assert gunzip(gzip.compress(b"abc") + b"\0" * 10, "f") == b"abc"  # zero padding stays legal


# ----------------------------------------------------------------------------- raw IDX on disk


def test_sparse_8_gib_raw_idx_is_refused_by_its_declared_size(tmp_path):
    """A sparse file whose header declares 8 GiB of images: refused from the header and the
    ceiling, without reading (or allocating) 8 GiB."""
    path = tmp_path / "train-images-idx3-ubyte"
    n = (8 << 30) // (28 * 28)
    path.write_bytes(IMAGES_MAGIC.to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    os.truncate(path, 16 + n * 28 * 28)
    refused(f"""
        path = {str(path)!r}
        call = lambda: F.read_idx(path, 0x803)
    """, r"IDX header declares .* more than any IDX dataset file", mem_mb=256)


def test_idx_zero_images_of_an_overflowing_size():
    """Found by benchmarks/fuzz_parsers.py: 0 images of 4294967295 x 5 is 0 bytes, but numpy
    refuses the shape with a ValueError (a crash, not a one-line error)."""
    from reslab.data.formats import parse_idx_images

    head = IMAGES_MAGIC.to_bytes(4, "big") + (0).to_bytes(4, "big") + (2 ** 32 - 1).to_bytes(4, "big") + \
        (5).to_bytes(4, "big")
    with pytest.raises(DataFormatError, match=r"^f: IDX header declares 0 x 4294967295 x 5 \(dimensions\)"):
        parse_idx_images(head, "f")
    assert parse_idx_images(head[:8] + (28).to_bytes(4, "big") * 2, "f").shape == (0, 1, 28, 28)


def test_idx_file_shorter_than_its_header_declares_is_refused_before_reading(tmp_path):
    from reslab.data.formats import read_idx

    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.ones((4, 3, 3), np.uint8), IMAGES_MAGIC)[:-5])
    with pytest.raises(DataFormatError, match="declares 52 bytes but the file holds 47"):
        read_idx(path, IMAGES_MAGIC)


# ----------------------------------------------------------------------------- CIFAR pickles


def test_pickle_huge_memo_index_is_refused():
    refused("""
        blob = b"\\x80\\x02K\\x01r\\xff\\xff\\xff\\x7f."   # LONG_BINPUT 2**31 - 1
        call = lambda: C.parse_cifar_batch(blob, "m", "labels", 10)
    """, r"^REFUSED m: pickle memo index 2147483647", mem_mb=256)


def test_pickle_list_dag_is_refused_before_anything_walks_it():
    """labels = L79 where Li = [L(i-1), L(i-1)]: a few hundred bytes, 2**79 leaves."""
    refused("""
        import pickle
        dag = [1]
        for _ in range(79):
            dag = [dag, dag]   # pickle memoizes the shared list and fetches it again (BINGET)
        blob = pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": dag}, protocol=2)
        call = lambda: C.parse_cifar_batch(blob, "dag", "labels", 10)
    """, r"dag: pickle re-uses a container", mem_mb=256, seconds=20)


def test_pickle_trailing_bytes_after_stop():
    blob, _, _ = cifar_batch(2, 10, seed=0)
    parse_cifar_batch(blob, "ok", "labels", 10)
    with pytest.raises(DataFormatError, match=r"^t: 5 bytes after the pickle's end"):
        parse_cifar_batch(blob + b"extra", "t", "labels", 10)


@pytest.mark.parametrize("blob, match", [
    (b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85\x81.", "opcode NEWOBJ"),
    (b"\x80\x02(cos\nsystem\nX\x02\x00\x00\x00idtR.", "opcode INST|references os.system"),
    (b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"abc.", r"not a valid CIFAR pickle \(ValueError"),
    (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a;\x85U\x01b\x87R.",
     "never writes"),  # _reconstruct with a 1e9 shape (numpy allocates it before BUILD)
    (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R.", "dtype 'O8'"),  # object arrays
])
def test_pickle_opcodes_and_helpers_are_restricted(blob, match):
    with pytest.raises(DataFormatError, match=match):
        parse_cifar_batch(blob, "p", "labels", 10)


@pytest.mark.parametrize("extra, match", [
    ({"evil": 1}, "unexpected key 'evil'"),
    ({"filenames": [1, 2]}, "'filenames' must be a list of 2 names"),
    ({"coarse_labels": [[1], [2]]}, "'coarse_labels' must be a list of 2 integers"),
    ({"labels": [True, 1]}, "list of integers"),
    ({"labels": [1, 2**70]}, "list of integers"),
    ({"batch_label": [1]}, "'batch_label' must be a string"),
])
def test_cifar_structure_is_exact(extra, match):
    from datafiles import py2_pickle

    obj = {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2], **extra}
    with pytest.raises(DataFormatError, match=f"^b: .*{match}"):
        parse_cifar_batch(py2_pickle(obj), "b", "labels", 10)


def test_cifar_array_state_must_match_its_bytes():
    """BUILD gives the array a shape of 10**6 images but 6144 bytes: refused, nothing allocated."""
    from datafiles import py2_pickle

    blob = py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]})
    bad = blob.replace(b"K\x02M\x00\x0c\x86", b"J\x40\x42\x0f\x00M\x00\x0c\x86")  # shape (2, 3072) -> (10**6, 3072)
    assert bad != blob
    with pytest.raises(DataFormatError, match="declares an array of 3072000000 bytes but gives 6144"):
        parse_cifar_batch(bad, "b", "labels", 10)


def test_tar_inflated_size_is_capped(tmp_path):
    path = tmp_path / "a.tar.gz"
    write_tar(path, {"x/big": b"\0" * 50_000, "cifar-10-batches-py/test_batch": b"abc"})
    with pytest.raises(DataFormatError, match="inflates to more than 10000 bytes"):
        read_tar_members(path, {"cifar-10-batches-py/test_batch": "t"}, max_inflated=10_000)


def test_cifar_batch_file_above_the_ceiling_is_not_read(tmp_path, monkeypatch):
    from reslab.data import cifar_format

    make_cifar10(tmp_path, per_batch=2)
    monkeypatch.setattr(cifar_format, "MAX_CIFAR_BATCH_BYTES", 1000)
    with pytest.raises(DataFormatError, match=r"test_batch: \d+ bytes, more than any CIFAR batch"):
        load_arrays("cifar10", "test", tmp_path, cache=False, download=False)


# ----------------------------------------------------------------------------- the fuzzer


def test_fuzz_every_parser_under_memory_and_time_limits():
    """benchmarks/fuzz_parsers.py at a small size: hypothesis inputs plus the hostile cases,
    each under a per-case alarm, the process under RLIMIT_AS.  0 crashes, hangs, blow-ups."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz_parsers.py"), "--examples", "40",
                        "--case-seconds", "5", "--mem-mb", "1024", "--quick"],
                       capture_output=True, text=True, timeout=300, env=env)
    report = json.loads(p.stdout)
    total = report["total"]
    assert total["cases"] >= 200 and total["format_error"] > 0 and total["ok"] > 0
    assert (total["crash"], total["hang"], total["blowup"]) == (0, 0, 0), json.dumps(report["by_parser"])[:3000]
    assert p.returncode == 0


# ----------------------------------------------------------------------------- downloads


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A local HTTP server whose handler the test sets; MNIST's published files point at it."""
    behaviour = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            behaviour["handler"](self)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], system_dirs=(str(tmp_path / "none"),),
                                                   base_url=f"http://127.0.0.1:{server.server_port}/"))
    monkeypatch.setattr(store, "fetch", REAL_FETCH)
    yield behaviour
    server.shutdown()


def test_download_deadline_and_part_file_removed(served, monkeypatch):
    def drip(h):  # a server that never finishes: one byte every 50 ms
        h.send_response(200)
        h.end_headers()
        try:
            for _ in range(10_000):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    served["handler"] = drip
    t = time.perf_counter()
    with pytest.raises(ReslabError, match="download deadline"):
        store.download(DATASETS["mnist"], deadline_s=1.0)
    assert time.perf_counter() - t < 10
    assert list(store.dataset_cache_dir(DATASETS["mnist"]).iterdir()) == []  # no .part left


def test_download_size_cap_from_the_published_size(served, monkeypatch):
    info = DATASETS["mnist"]
    monkeypatch.setitem(DATASETS, "mnist", replace(info, downloads=tuple(replace(s, size=1000) for s in info.downloads)))

    def endless(h):  # no Content-Length, just more bytes than the published file has
        h.send_response(200)
        h.end_headers()
        try:
            h.wfile.write(b"y" * 5000)
        except OSError:
            pass

    served["handler"] = endless
    with pytest.raises(ReslabError, match="more than the 1000 bytes of the published file"):
        store.download(DATASETS["mnist"])

    def announces(h):
        h.send_response(200)
        h.send_header("Content-Length", str(10 ** 12))
        h.end_headers()

    served["handler"] = announces
    with pytest.raises(ReslabError, match="announces 1000000000000 bytes"):
        store.download(DATASETS["mnist"])
    assert list(store.dataset_cache_dir(DATASETS["mnist"]).iterdir()) == []


def test_download_interrupted_by_keyboard_removes_part(tmp_path, monkeypatch):
    def interrupted(url, dest, timeout=None, **kw):
        dest.write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.download(DATASETS["mnist"], dest=tmp_path / "d")
    assert list((tmp_path / "d").iterdir()) == []


def test_stale_part_files_swept_only_when_their_process_is_gone(tmp_path, monkeypatch):
    dest = tmp_path / "d"
    dest.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = dest / f".train-images-idx3-ubyte.gz.{dead.pid}.part"
    live = dest / f".train-labels-idx1-ubyte.gz.{os.getppid()}.part"  # our parent is alive
    other = dest / "notes.part"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    monkeypatch.setattr(store, "fetch", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(ReslabError, match="offline"):
        store.download(DATASETS["mnist"], dest=dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted([live.name, other.name])


# ----------------------------------------------------------------------------- one location per dataset


@pytest.fixture
def mnist_isolated(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], system_dirs=(str(tmp_path / "system"),)))


def test_data_dir_with_only_training_files_does_not_borrow_the_test_split(tmp_path, monkeypatch, mnist_isolated):
    make_idx_dataset(tmp_path / "elsewhere" / "mnist", n_train=7, n_test=3)  # a complete copy in $RESLAB_DATA
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path / "elsewhere"))
    mine = tmp_path / "mine"
    make_idx_dataset(mine, n_train=5, n_test=2)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (mine / name).unlink()
    assert len(load_arrays("mnist", "train", mine, cache=False, download=False)[0]) == 5
    with pytest.raises(ReslabError, match=rf"{mine} \(--data-dir\) holds .* but the test split's "
                                          r"t10k-images-idx3-ubyte\.gz, t10k-labels-idx1-ubyte\.gz not found there"):
        load_arrays("mnist", "test", mine, cache=False, download=False)
    # and never a download into the cache to fill the gap
    monkeypatch.setattr(store, "fetch", lambda *a, **k: pytest.fail("downloaded the missing split"))
    with pytest.raises(ReslabError, match="not found there"):
        load_arrays("mnist", "test", mine, cache=False)


def test_training_with_a_half_data_dir_names_the_missing_file(tmp_path, mnist_isolated):
    import reslab

    mine = tmp_path / "mine"
    make_idx_dataset(mine, n_train=64, n_test=8)
    (mine / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ReslabError, match=r"t10k-labels-idx1-ubyte\.gz not found there"):
        reslab.train({"model": "cifar-resnet8", "width": 0.25, "dataset": "mnist", "data_dir": str(mine),
                      "val_size": 16, "batch_size": 16, "iterations": 2, "amp": "off"}, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_partial_cache_is_completed_by_a_download(tmp_path, monkeypatch, mnist_isolated):
    """The user cache is the exception: an interrupted download left part of it, the next
    download completes it (files already there and valid are kept)."""
    folder = tmp_path / "mirror"
    make_idx_dataset(folder, n_train=9, n_test=4)
    info = DATASETS["mnist"]
    import hashlib
    specs = tuple(FileSpec(s.name, hashlib.md5((folder / s.name).read_bytes()).hexdigest()) for s in info.downloads)
    monkeypatch.setitem(DATASETS, "mnist", replace(info, downloads=specs, base_url=folder.as_uri() + "/"))
    monkeypatch.setattr(store, "fetch", REAL_FETCH)
    cache = store.dataset_cache_dir(DATASETS["mnist"])
    cache.mkdir(parents=True)
    (cache / "train-images-idx3-ubyte.gz").write_bytes((folder / "train-images-idx3-ubyte.gz").read_bytes())
    assert len(load_arrays("mnist", "test")[0]) == 4
