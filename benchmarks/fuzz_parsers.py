"""Property-based fuzzing of reslab's file parsers under a memory ceiling and a per-case time limit.

Every parser that reads untrusted bytes (IDX raw and gzipped, gunzip, the CIFAR pickle
reader, the tar reader, IDX files on disk) is fed hypothesis-generated inputs: random
bytes, valid files with a few bytes changed or cut, and hand-made hostile files (gzip bombs,
100,000 empty gzip members, huge declared sizes, sparse multi-GB files, pickle memo abuse,
list DAGs, trailing bytes).  The process runs under ``RLIMIT_AS`` (``--mem-mb``) and each
case under a ``setitimer`` alarm (``--case-seconds``).  Each case ends as one of:

* ``ok``: parsed;
* ``format_error``: a one-line :class:`DataFormatError` / ``ReslabError`` naming the file;
* ``crash``: any other exception (or a multi-line error);
* ``hang``: the case ran past its time limit;
* ``blowup``: MemoryError under the ceiling (also when a parser wrapped it in its message).

Usage (the test suite runs a small version of this; RESULTS.md has a long run)::

    PYTHONPATH=src .venv/bin/python benchmarks/fuzz_parsers.py --examples 3000 --json fuzz.json

Exit status 0 only when there was no crash, hang or blow-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so no parser's ``except Exception`` eats it."""


def machine() -> str:
    model, flags = "unknown CPU", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    keep = [f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "sse4_2", "bmi2")]
    return f"{model}; {os.cpu_count()} logical CPUs; flags incl. {' '.join(keep) or 'none of avx2/avx512'}; " \
           f"Python {platform.python_version()}, {platform.system()} {platform.release()}"


def hostile_cases(quick: bool) -> dict[str, list[bytes]]:
    """Hand-made attacks, by target (each also runs under the same limits)."""
    import gzip

    import numpy as np
    from datafiles import IMAGES_MAGIC, cifar_batch, idx_bytes

    def gz(b: bytes) -> bytes:
        return gzip.compress(b, mtime=0)

    small = idx_bytes(np.arange(48, dtype=np.uint8).reshape(3, 4, 4), IMAGES_MAGIC)
    zeros_mib = gz(b"\0" * (1 << 20))
    huge_header = IMAGES_MAGIC.to_bytes(4, "big") + (1 << 31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    idx = [
        gz(small) + zeros_mib * (64 if quick else 1024),          # header says 64 bytes, then 64 MiB-1 GiB of zeros
        gz(huge_header) + zeros_mib * 8,                           # declares 1.6 TB
        gz(b"") * 100_000 + gz(small),                             # 100,000 empty members first
        gz(small) + b"\0" * 1000,                                  # legal zero padding
        gz(small) + b"garbage",                                    # trailing garbage
        huge_header + b"\0" * 100,                                 # raw, declares 1.6 TB
    ]
    gunzip = [gz(b"") * 100_000, zeros_mib * (300 if quick else 600), gz(b"x") + b"\x1f\x8b\x08"]
    blob, _, _ = cifar_batch(2, 10, seed=0)
    dag = bytearray(b"\x80\x02]q\x00K\x01a")                       # L0 = [1], memo 0
    for i in range(1, 80):                                         # Li = [L(i-1), L(i-1)]: 2^79 leaves
        dag += b"](h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"eq" + bytes([i])
    dag_batch = (b"\x80\x02}q\x00(X\x06\x00\x00\x00labelsq\x01" + bytes(dag[2:]) +
                 b"X\x04\x00\x00\x00dataq\x7fK\x00u.")
    cifar = [
        b"\x80\x02K\x01r\xff\xff\xff\x7f.",                           # memo index 2^31-1
        b"\x80\x02K\x01r\x00\x00\x00\x00h\x00h\x00\x86.",             # fine: an int fetched twice
        bytes(dag) + b".",                                         # list DAG
        dag_batch,
        blob + b"trailing",                                        # bytes after STOP
        b"\x80\x05\x95" + (1 << 60).to_bytes(8, "little") + b"N.",  # frame larger than the file
        b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"abc.",  # bytearray8 of 1 TB
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xca\x9a;\x85U\x01b\x87R.",
    ]
    return {"idx": idx, "gunzip": gunzip, "cifar": cifar}


def run(examples: int, case_seconds: float, seed: int, quick: bool) -> dict:
    import gzip

    import numpy as np
    from datafiles import IMAGES_MAGIC, LABELS_MAGIC, cifar_batch, idx_bytes, write_tar
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from reslab.data import cifar_format, formats
    from reslab.errors import ReslabError

    stats: dict[str, dict] = {}

    def classify(target: str, fn, data, source: str) -> None:
        s = stats.setdefault(target, {"cases": 0, "ok": 0, "format_error": 0, "crash": 0, "hang": 0, "blowup": 0,
                                      "max_seconds": 0.0, "examples_of_failures": []})
        s["cases"] += 1
        t0 = time.perf_counter()
        outcome, detail = "ok", ""
        signal.setitimer(signal.ITIMER_REAL, case_seconds)
        try:
            fn(data)
        except Hang:
            outcome = "hang"
        except MemoryError:
            outcome = "blowup"
        except ReslabError as err:
            msg = str(err)
            if "MemoryError" in msg:
                outcome, detail = "blowup", msg
            elif "\n" in msg or not msg.startswith(source):
                outcome, detail = "crash", msg
            else:
                outcome = "format_error"
        except BaseException as err:  # noqa: BLE001 - everything else is a crash
            outcome, detail = "crash", f"{type(err).__name__}: {err}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        s[outcome] += 1
        s["max_seconds"] = max(s["max_seconds"], round(time.perf_counter() - t0, 3))
        if outcome not in ("ok", "format_error") and len(s["examples_of_failures"]) < 5:
            s["examples_of_failures"].append({"outcome": outcome, "detail": detail[:300], "input": bytes(data[:64]).hex()
                                              if isinstance(data, (bytes, bytearray)) else str(data)})

    def on_alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)

    def mutate(base: bytes):
        return st.tuples(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=6),
                         st.integers(1, len(base)), st.binary(max_size=16)).map(
            lambda t: bytes(_apply(bytearray(base), t[0]))[: t[1]] + t[2])

    def header_with(magic: int, ndim: int):
        """IDX headers with arbitrary declared sizes, then a short payload."""
        return st.tuples(st.lists(st.integers(0, 2 ** 32 - 1), min_size=ndim, max_size=ndim),
                         st.binary(max_size=64), st.booleans()).map(
            lambda t: (lambda raw: gzip.compress(raw, mtime=0) if t[2] else raw)(
                magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in t[0]) + t[1]))

    def members():
        return st.lists(st.binary(max_size=40), max_size=50).map(
            lambda parts: b"".join(gzip.compress(p, mtime=0) for p in parts))

    valid_idx_gz = gzip.compress(idx_bytes(np.arange(48, dtype=np.uint8).reshape(3, 4, 4), IMAGES_MAGIC), mtime=0)
    valid_idx_raw = idx_bytes(np.ones((2, 3, 3), np.uint8), IMAGES_MAGIC)
    valid_labels = idx_bytes(np.arange(5, dtype=np.uint8), LABELS_MAGIC)
    cifar_py2 = cifar_batch(2, 10, seed=0)[0]
    import pickle

    data = np.zeros((2, 3072), np.uint8)
    cifar_p5 = pickle.dumps({"data": data, "labels": [1, 2]}, protocol=5)
    cifar_p0 = pickle.dumps({"data": data, "labels": [1, 2]}, protocol=0)
    hostile = hostile_cases(quick)
    _settings = settings(max_examples=examples, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))

    def conf(fn):  # reproducible: the same --seed draws the same inputs
        return hypothesis_seed(seed)(_settings(fn))

    tmpdir = Path(tempfile.mkdtemp(prefix="reslab-fuzz-"))

    @conf
    @given(st.one_of(st.binary(max_size=300), mutate(valid_idx_gz), mutate(valid_idx_raw), mutate(valid_labels),
                     header_with(IMAGES_MAGIC, 3), header_with(LABELS_MAGIC, 1), members(),
                     st.sampled_from(hostile["idx"])))
    def fuzz_idx(blob):
        classify("idx (bytes)", lambda d: formats.parse_idx_images(d, "f"), blob, "f")
        classify("idx (bytes)", lambda d: formats.parse_idx_labels(d, "f"), blob, "f")

    @conf
    @given(st.one_of(st.binary(max_size=300), mutate(gzip.compress(b"some payload" * 20, mtime=0)), members(),
                     st.sampled_from(hostile["gunzip"])))
    def fuzz_gunzip(blob):
        classify("gunzip", lambda d: formats.gunzip(d, "f", limit=formats.MAX_IDX_BYTES), blob, "f")

    @conf
    @given(st.one_of(st.binary(max_size=300), mutate(cifar_py2), mutate(cifar_p5), mutate(cifar_p0),
                     st.sampled_from(hostile["cifar"])))
    def fuzz_cifar(blob):
        classify("cifar pickle", lambda d: cifar_format.parse_cifar_batch(d, "f", "labels", 10), blob, "f")

    tar_path = tmpdir / "t.tar.gz"
    write_tar(tar_path, {"cifar-10-batches-py/test_batch": b"abc" * 50})
    small_tar = tar_path.read_bytes()

    @conf
    @given(st.one_of(st.binary(max_size=300), mutate(small_tar)))
    def fuzz_tar(blob):
        path = tmpdir / "a.tar.gz"
        path.write_bytes(blob)
        classify("tar", lambda p: cifar_format.read_tar_members(p, {"cifar-10-batches-py/test_batch": "t"}), path, str(path))

    @conf
    @given(st.one_of(header_with(IMAGES_MAGIC, 3), mutate(valid_idx_raw), mutate(valid_idx_gz)),
           st.integers(0, 9 << 30))
    def fuzz_idx_file(blob, sparse_size):
        """On disk, sometimes extended to a sparse file of up to 9 GiB."""
        path = tmpdir / "f.idx"
        path.write_bytes(blob)
        if sparse_size > len(blob):
            os.truncate(path, sparse_size)
        classify("idx (file, sparse up to 9 GiB)", lambda p: formats.read_idx(p, IMAGES_MAGIC), path, str(path))
        path.unlink()

    try:
        for fn in (fuzz_idx, fuzz_gunzip, fuzz_cifar, fuzz_tar, fuzz_idx_file):
            fn()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    for blob in hostile["idx"]:  # each hostile case at least once, whatever hypothesis drew
        classify("idx (bytes)", lambda d: formats.parse_idx_images(d, "f"), blob, "f")
    for blob in hostile["gunzip"]:
        classify("gunzip", lambda d: formats.gunzip(d, "f", limit=formats.MAX_IDX_BYTES), blob, "f")
    for blob in hostile["cifar"]:
        classify("cifar pickle", lambda d: cifar_format.parse_cifar_batch(d, "f", "labels", 10), blob, "f")
    return stats


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _apply(buf: bytearray, edits):
    for pos, val in edits:
        buf[pos] = val
    return buf


def _peak_cases() -> dict[str, list[tuple[str, bytes]]]:
    """The hostile inputs by parser, named, plus damaged metrics.jsonl files and the published
    CIFAR form (a valid input, as the yardstick)."""
    from datafiles import cifar_batch

    named = {t: [(f"{t} #{i}", d) for i, d in enumerate(ds)] for t, ds in hostile_cases(quick=False).items()}
    named["cifar"].append(("cifar published form, 10,000 images (valid)", cifar_batch(10_000, 10, seed=0)[0]))
    named["metrics"] = [("metrics [1]", b'{"iteration": 1}\n[1]\n'), ("metrics NaN", b'{"iteration": NaN}\n{}\n'),
                        ("metrics not UTF-8", b'{"iteration": 1}\n\xff\n'),
                        ("metrics 50 MB line", b'{"iteration": 1, "x": "' + b"a" * (50 << 20) + b'"}\n{}\n'),
                        ("metrics nested 10^6", b"[" * 1_000_000 + b"\n{}\n")]
    return named


def _one_peak(target: str, data: bytes) -> str:
    """Runs in a forked child: parse ``data``; returns the outcome as one line."""
    import tempfile

    from reslab.data import cifar_format, formats
    from reslab.errors import ReslabError
    from reslab.training.metrics import read_metrics

    try:
        if target == "idx":
            formats.parse_idx_images(data, "f")
        elif target == "gunzip":
            formats.gunzip(data, "f")
        elif target == "cifar":
            cifar_format.parse_cifar_batch(data, "f", "labels", 10)
        else:
            with tempfile.TemporaryDirectory() as d:
                Path(d, "metrics.jsonl").write_bytes(data)
                read_metrics(d)
        return "ok"
    except ReslabError as err:
        return "error: " + str(err)[:110]
    except BaseException as err:  # noqa: BLE001 - reported as a crash
        return f"CRASH {type(err).__name__}: {str(err)[:100]}"


def peaks() -> int:
    """Each hostile input in its own forked child; its peak RSS from wait4 (ru_maxrss), less
    the child's RSS before parsing.  Prints a Markdown table (RESULTS.md's hostile section)."""
    import datafiles  # noqa: F401

    import reslab.data.formats  # noqa: F401
    import reslab.training.metrics  # noqa: F401
    cases = _peak_cases()
    print(f"machine: {machine()}")
    print("| parser | case | outcome | peak RSS over baseline (MB) | seconds |")
    print("|---|---|---|---|---|")
    crashed = 0
    for target, items in cases.items():
        for name, data in items:
            r, w = os.pipe()
            t0 = time.time()
            pid = os.fork()
            if pid == 0:  # child
                os.close(r)
                base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                out = _one_peak(target, data)
                os.write(w, f"{base}\t{out}".encode()[:4000])
                os._exit(0)
            os.close(w)
            msg = os.read(r, 4096).decode(errors="replace")
            os.close(r)
            _, _, usage = os.wait4(pid, 0)
            base, _, outcome = msg.partition("\t")
            crashed += outcome.startswith("CRASH") or not outcome
            extra = (usage.ru_maxrss - int(base or 0)) / 1024
            print(f"| {target} | {name} ({len(data):,} B) | {' '.join(outcome.split())[:90]} | {extra:.1f} | "
                  f"{time.time() - t0:.2f} |", flush=True)
    return 1 if crashed else 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "--peaks" in argv:  # one child per hostile input, peak memory each
        sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
        return peaks()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000, help="hypothesis examples per parser")
    ap.add_argument("--case-seconds", type=float, default=10.0, help="time limit per case")
    ap.add_argument("--mem-mb", type=int, default=1536,
                    help="RLIMIT_AS: the address space mapped after imports plus this much")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed (same seed, same inputs)")
    ap.add_argument("--quick", action="store_true", help="smaller hostile inputs (the test suite's run)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    # Import first (``import reslab`` pulls in torch, whose mappings are large but not the
    # parsers' doing), then cap the address space at what is mapped now plus --mem-mb.
    import datafiles  # noqa: F401
    import hypothesis  # noqa: F401
    import numpy  # noqa: F401

    import reslab.data.formats  # noqa: F401
    baseline = _vm_size()
    limit = baseline + (args.mem_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t0 = time.time()
    stats = run(args.examples, args.case_seconds, args.seed, args.quick)
    total = {k: sum(s[k] for s in stats.values()) for k in ("cases", "ok", "format_error", "crash", "hang", "blowup")}
    report = {"machine": machine(), "examples_per_parser": args.examples, "seed": args.seed, "case_seconds": args.case_seconds,
              "mem_limit_mb": args.mem_mb, "address_space_baseline_mb": baseline >> 20, "seconds": round(time.time() - t0, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "total": total, "by_parser": stats}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if total["crash"] == total["hang"] == total["blowup"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
