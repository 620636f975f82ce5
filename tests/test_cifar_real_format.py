"""The published CIFAR batches load: Python 2 + numpy 1.x pickles, byte for byte.

The batches in cifar-10-python.tar.gz / cifar-100-python.tar.gz were written in 2009 by
Python 2's cPickle (protocol 2) from numpy 1.x arrays: ``str`` keys as BINSTRING, memo slots
from 1, and ``numpy.dtype('u1', 0, 1)`` with *int* flags.  tests/datafiles.py assembles those
bytes by hand (:class:`Py2CifarWriter`); tests/data/py2_cifar/ holds files that Python 2.7 +
numpy 1.16 wrote, and the first tests check the two agree byte for byte.
"""

from __future__ import annotations

import gzip
import io
import itertools
import pickle
import pickletools
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from datafiles import (CIFAR10_KEYS, CIFAR100_KEYS, IMAGES_MAGIC, LABELS_MAGIC, idx_bytes,  # noqa: F401
                       isolated_data_env, make_cifar10, make_cifar100, py2_cifar_bytes, py2_pickle)

from reslab.data import load_arrays
from reslab.data.cifar_format import parse_cifar_batch
from reslab.data.formats import read_idx_images, read_idx_labels
from reslab.errors import DataFormatError

GOLDEN = Path(__file__).parent / "data" / "py2_cifar"


def _pattern(n: int, seed: int) -> np.ndarray:
    """tests/data/py2_cifar/write_py2.py's pixels."""
    return ((np.arange(n * 3072) * 7 + seed) % 256).astype(np.uint8).reshape(n, 3072)


def _golden_objects():
    """The objects write_py2.py pickled, keys in the order Python 2 walked its dicts."""
    c10 = {"data": _pattern(2, 1), "labels": [6, 9], "batch_label": "training batch 1 of 5",
           "filenames": ["leptodactylus_pentadactylus_s_000004.png", "camion_s_000148.png"]}
    c100 = {"data": _pattern(3, 2), "batch_label": "testing batch 1 of 1", "fine_labels": [19, 29, 0],
            "coarse_labels": [11, 15, 4], "filenames": ["volcano_s_000012.png", "woods_s_000412.png",
                                                        "apple_s_000028.png"]}
    edges = {"widths": [0, 255, 256, 65535, 65536, -1, 2 ** 31 - 1], "edges": [i % 10 for i in range(2001)],
             "inner": {"x": np.arange(3, dtype=np.int64)}, "again": _pattern(1, 3)[:, :4]}
    return {"cifar10_batch.pkl": c10, "cifar100_batch.pkl": c100, "edges.pkl": edges}


@pytest.mark.parametrize("name", sorted(_golden_objects()))
def test_writer_matches_python2_bytes(name):
    expected = (GOLDEN / name).read_bytes()
    assert expected[:2] == b"\x80\x02" and b"K\x00K\x01\x87R" in expected  # protocol 2, dtype(spec, 0, 1)
    assert py2_cifar_bytes(_golden_objects()[name]) == expected


def test_python2_bytes_are_what_numpy_reads():
    """numpy itself unpickles the assembled bytes into the same arrays (no reslab code):
    the writer's bytes mean what they claim."""
    obj = _golden_objects()["edges.pkl"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 aliases numpy.core
        back = pickle.loads(py2_cifar_bytes(obj), encoding="bytes")
    assert back[b"edges"] == obj["edges"] and back[b"widths"] == obj["widths"]
    np.testing.assert_array_equal(back[b"inner"][b"x"], obj["inner"]["x"])
    np.testing.assert_array_equal(back[b"again"], obj["again"])


@pytest.mark.parametrize("name,key,classes", [("cifar10_batch.pkl", "labels", 10),
                                               ("cifar100_batch.pkl", "fine_labels", 100)])
def test_python2_written_batches_parse(name, key, classes):
    obj = _golden_objects()[name]
    x, y = parse_cifar_batch((GOLDEN / name).read_bytes(), name, key, classes)
    np.testing.assert_array_equal(x, obj["data"].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(y, obj[key])
    assert x.dtype == np.uint8 and y.dtype == np.int64


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_published_layout_loads(tmp_path, archive):
    expected = make_cifar10(tmp_path, per_batch=3, archive=archive)
    member = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes() if not archive else None
    if member is not None:  # the layout really is the historical one
        ops = [op.name for op, _, _ in pickletools.genops(member)]
        assert ops[:4] == ["PROTO", "EMPTY_DICT", "BINPUT", "MARK"] and "BINSTRING" in ops and "BINUNICODE" not in ops
    for split in ("train", "test"):
        x, y = load_arrays("cifar10", split, tmp_path, cache=False, download=False)
        np.testing.assert_array_equal(x, expected[split][0])
        np.testing.assert_array_equal(y, expected[split][1])
    assert len(load_arrays("cifar10", "train", tmp_path, cache=False, download=False)[0]) == 15


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_published_layout_loads(tmp_path, archive):
    expected = make_cifar100(tmp_path, n=4, archive=archive)
    for split in ("train", "test"):
        x, y = load_arrays("cifar100", split, tmp_path, cache=False, download=False)
        np.testing.assert_array_equal(x, expected[split][0])
        np.testing.assert_array_equal(y, expected[split][1])


@pytest.mark.parametrize("keys,label_key,classes", [(CIFAR10_KEYS, "labels", 10),
                                                     (CIFAR100_KEYS, "fine_labels", 100)])
def test_any_key_order_parses(keys, label_key, classes):
    """A Python 2 dict's order depends on its hash table: every order of the keys loads."""
    fields = {"batch_label": "b", "data": _pattern(1, 5), label_key: [7], "filenames": ["f.png"],
              "coarse_labels": [1]}
    for order in itertools.permutations(keys):
        x, y = parse_cifar_batch(py2_cifar_bytes({k: fields[k] for k in order}), "b", label_key, classes)
        assert y.tolist() == [7] and x.shape == (1, 3, 32, 32)


def test_numpy2_style_pickle_still_loads():
    data = _pattern(2, 4)
    blob = py2_pickle({"data": data, "labels": [1, 2]})
    assert b"\x89\x88\x87" in blob  # dtype('u1', False, True): bools, as numpy 2 writes
    x, y = parse_cifar_batch(blob, "b", "labels", 10)
    np.testing.assert_array_equal(x.reshape(2, -1), data)


@pytest.mark.parametrize("flags,spec", [(b"K\x02K\x01", b"u1"), (b"K\x00K\x05", b"u1"),
                                         (b"G" + bytes(8) + b"K\x01", b"u1"), (b"K\x00K\x01", b"O8")])
def test_dtype_flags_stay_restricted(flags, spec):
    """Only 0/1 (or bools) as flags, only numeric types: the restriction did not widen."""
    blob = py2_cifar_bytes({"data": _pattern(1, 0), "labels": [0]})
    bad = blob.replace(b"U\x02u1K\x00K\x01", b"U" + bytes([len(spec)]) + spec + flags)
    assert bad != blob
    with pytest.raises(DataFormatError, match="numpy dtype"):
        parse_cifar_batch(bad, "b", "labels", 10)


def _historical_gzip(raw: bytes, name: str) -> bytes:
    """gzip as the gzip(1) of the original MNIST files wrote it: FNAME flag and the original
    name, a real mtime, OS = Unix, maximum compression (XFL 2); raw DEFLATE, CRC32, ISIZE."""
    head = b"\x1f\x8b\x08\x08" + (1_013_454_288).to_bytes(4, "little") + b"\x02\x03" + name.encode() + b"\x00"
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = comp.compress(raw) + comp.flush()
    return head + body + zlib.crc32(raw).to_bytes(4, "little") + (len(raw) & 0xFFFFFFFF).to_bytes(4, "little")


def test_idx_gz_with_historical_header(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    raw_i, raw_l = idx_bytes(images, IMAGES_MAGIC), idx_bytes(labels, LABELS_MAGIC)
    assert raw_i[:8] == b"\x00\x00\x08\x03\x00\x00\x00\x07" and raw_l[:4] == b"\x00\x00\x08\x01"
    pi, pl = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    pi.write_bytes(_historical_gzip(raw_i, "train-images-idx3-ubyte"))
    pl.write_bytes(_historical_gzip(raw_l, "train-labels-idx1-ubyte"))
    assert gzip.decompress(pi.read_bytes()) == raw_i  # a gzip that gzip itself reads
    np.testing.assert_array_equal(read_idx_images(pi)[:, 0], images)
    np.testing.assert_array_equal(read_idx_labels(pl), labels)


def test_written_bytes_are_deterministic():
    """Two calls, same bytes: the fixture is a format, not a snapshot of one run."""
    obj = {"batch_label": "x", "labels": [1], "data": _pattern(1, 9), "filenames": ["a.png"]}
    assert py2_cifar_bytes(obj) == py2_cifar_bytes(dict(obj))
    assert io.BytesIO(py2_cifar_bytes(obj)).read(2) == b"\x80\x02"
