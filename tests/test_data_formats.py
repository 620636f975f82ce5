"""The IDX and CIFAR parsers: real formats, every malformed case, hostile pickles, fuzzing."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from datafiles import (IMAGES_MAGIC, LABELS_MAGIC, cifar_batch, idx_bytes, isolated_data_env,  # noqa: F401
                        make_cifar10, make_cifar100, make_idx_dataset, py2_pickle, write_tar)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reslab.data import load_arrays
from reslab.data.cifar_format import parse_cifar_batch, read_tar_members
from reslab.data.formats import gunzip, parse_idx_images, parse_idx_labels
from reslab.data.safepickle import safe_unpickle
from reslab.errors import DataFormatError, ReslabError

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dataset_roundtrip(tmp_path, gz):
    expected = make_idx_dataset(tmp_path / "mnist", n_train=7, n_test=3, gz=gz)
    for split in ("train", "test"):
        x, y = load_arrays("mnist", split, tmp_path, cache=False, download=False)
        assert x.dtype == np.uint8 and x.shape == (len(expected[split][0]), 1, 28, 28)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, expected[split][0])
        np.testing.assert_array_equal(y, expected[split][1])


def test_idx_gz_detected_by_content_not_name():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(arr, IMAGES_MAGIC)
    np.testing.assert_array_equal(parse_idx_images(gzip.compress(raw), "x.idx")[:, 0], arr)
    np.testing.assert_array_equal(parse_idx_images(raw, "x.gz")[:, 0], arr)


def test_idx_bad_magic_names_file():
    raw = idx_bytes(np.zeros((2, 3, 3), np.uint8), IMAGES_MAGIC)
    with pytest.raises(DataFormatError, match=r"imgs\.idx: bad IDX magic number 0x00000801"):
        parse_idx_images(LABELS_MAGIC.to_bytes(4, "big") + raw[4:], "imgs.idx")
    with pytest.raises(DataFormatError, match="bad IDX magic"):
        parse_idx_labels(raw, "labels.idx")  # an image file where labels belong


def test_idx_dims_not_matching_size():
    raw = idx_bytes(np.zeros((4, 5, 5), np.uint8), IMAGES_MAGIC)
    with pytest.raises(DataFormatError, match=r"f\.idx: IDX header says 4 x 5 x 5 = 100 bytes but the file holds 99"):
        parse_idx_images(raw[:-1], "f.idx")
    with pytest.raises(DataFormatError, match="holds 101"):
        parse_idx_images(raw + b"\0", "f.idx")
    with pytest.raises(DataFormatError, match="truncated IDX header"):
        parse_idx_images(raw[:10], "f.idx")


def test_idx_truncated_gzip():
    gz = gzip.compress(idx_bytes(np.ones((50, 28, 28), np.uint8), IMAGES_MAGIC))
    with pytest.raises(DataFormatError, match=r"t\.gz: truncated gzip"):
        parse_idx_images(gz[: len(gz) // 2], "t.gz")
    corrupt = bytearray(gz)
    corrupt[-6] ^= 0xFF  # CRC/length trailer
    with pytest.raises(DataFormatError, match=r"t\.gz: corrupt gzip"):
        parse_idx_images(bytes(corrupt), "t.gz")


def test_gunzip_caps_output():
    bomb = gzip.compress(b"\0" * 100_000)
    with pytest.raises(DataFormatError, match="inflates to more than 1000 bytes"):
        gunzip(bomb, "bomb.gz", limit=1000)
    assert gunzip(bomb, "ok.gz") == b"\0" * 100_000


def test_idx_image_label_count_mismatch(tmp_path):
    make_idx_dataset(tmp_path, n_train=6, n_test=2)
    other = make_idx_dataset(tmp_path / "other", n_train=5, n_test=2)  # noqa: F841
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes((tmp_path / "other/train-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz.*6 images but 5 labels"):
        load_arrays("mnist", "train", tmp_path, cache=False, download=False)


def test_idx_label_out_of_range(tmp_path):
    make_idx_dataset(tmp_path, n_train=6, n_test=2)
    labels = np.array([0, 1, 2, 10, 3, 4], np.uint8)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels, LABELS_MAGIC)))
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz.*label 10 out of range, valid labels are 0\.\.9"):
        load_arrays("mnist", "train", tmp_path, cache=False, download=False)


def test_idx_wrong_image_size(tmp_path):
    make_idx_dataset(tmp_path, n_train=3, n_test=2, size=32)
    with pytest.raises(DataFormatError, match=r"images are 1x32x32, mnist images are 1x28x28"):
        load_arrays("mnist", "train", tmp_path, cache=False, download=False)


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    x, y = load_arrays("fashion-mnist", "train", download=False, cache=False)
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    xt, yt = load_arrays("fashion-mnist", "test", download=False, cache=False)
    assert xt.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(yt), [1000] * 10)
    # The published order begins with an ankle boot (9) followed by three T-shirts.
    assert list(y[:4]) == [9, 0, 0, 3]


# ----------------------------------------------------------------------------- CIFAR


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_dir_and_archive(tmp_path, archive):
    expected = make_cifar10(tmp_path / "cifar10", per_batch=3, archive=archive)
    for split in ("train", "test"):
        x, y = load_arrays("cifar10", split, tmp_path, cache=False, download=False)
        assert x.shape == (15 if split == "train" else 3, 3, 32, 32)
        np.testing.assert_array_equal(x, expected[split][0])
        np.testing.assert_array_equal(y, expected[split][1])


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100(tmp_path, archive):
    expected = make_cifar100(tmp_path, n=5, archive=archive)
    x, y = load_arrays("cifar100", "test", tmp_path, cache=False, download=False)
    np.testing.assert_array_equal(x, expected["test"][0])
    np.testing.assert_array_equal(y, expected["test"][1])  # fine labels, not coarse


def test_cifar_python3_pickles_accepted():
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        blob = pickle.dumps({"data": data, "labels": [3, 4], "filenames": [b"", b"a"]}, protocol=protocol)
        x, y = parse_cifar_batch(blob, "b", "labels", 10)
        np.testing.assert_array_equal(x.reshape(2, 3072), data)
        assert list(y) == [3, 4]


def test_cifar_pixel_layout():
    # Rows of 3072 are the R plane, then G, then B, each 32x32 row-major.
    data = np.zeros((1, 3072), np.uint8)
    data[0, 1024 + 32 * 2 + 5] = 7  # G channel, row 2, column 5
    x, _ = parse_cifar_batch(py2_pickle({"data": data, "labels": [0]}), "b", "labels", 10)
    assert x[0, 1, 2, 5] == 7 and x.sum() == 7


@pytest.mark.parametrize("obj, match", [
    ({"labels": [1]}, "lacks key.*data"),
    ({"data": np.zeros((1, 3072), np.uint8)}, "lacks key.*labels"),
    ({"data": np.zeros((2, 3000), np.uint8), "labels": [1, 2]}, r"shape \(N, 3072\)"),
    ({"data": np.zeros((2, 3072), np.float32), "labels": [1, 2]}, "uint8 array"),
    ({"data": [[0] * 3072], "labels": [1]}, "uint8 array"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [1]}, "2 images but 1 labels"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 10]}, "label 10 out of range"),
    ({"data": np.zeros((1, 3072), np.uint8), "labels": [-1]}, "label -1 out of range"),
    ({"data": np.zeros((1, 3072), np.uint8), "labels": ["a"]}, "list of integers"),
    ([1, 2, 3], "must be a dict"),
])
def test_cifar_malformed(obj, match):
    with pytest.raises(DataFormatError, match=f"^batch_x: .*{match}"):
        parse_cifar_batch(py2_pickle(obj), "batch_x", "labels", 10)


def test_cifar_malformed_in_archive_names_member(tmp_path):
    blob, _, _ = cifar_batch(2, 10, seed=0)
    write_tar(tmp_path / "cifar-10-python.tar.gz", {"cifar-10-batches-py/test_batch": blob[:-20]})
    with pytest.raises(DataFormatError, match=r"cifar-10-python\.tar\.gz:cifar-10-batches-py/test_batch: not a valid"):
        load_arrays("cifar10", "test", tmp_path, cache=False, download=False)


def test_cifar_archive_missing_member(tmp_path):
    blob, _, _ = cifar_batch(2, 10, seed=0)
    write_tar(tmp_path / "cifar-10-python.tar.gz", {"cifar-10-batches-py/data_batch_1": blob})
    with pytest.raises(DataFormatError, match="archive lacks cifar-10-batches-py/data_batch_2"):
        load_arrays("cifar10", "train", tmp_path, cache=False, download=False)


def test_tar_reader_ignores_traversal_and_links(tmp_path):
    import tarfile
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in (("../evil", b"x"), ("/abs", b"y"), ("d/ok", b"z")):
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tar.addfile(ti, io.BytesIO(blob))
        link = tarfile.TarInfo("d/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    got = read_tar_members(path, {"../evil": "a", "/abs": "b", "d/ok": "c", "d/link": "d"})
    assert got == {"c": b"z"}
    assert not (tmp_path.parent / "evil").exists()


def test_truncated_archive(tmp_path):
    make_cifar10(tmp_path, per_batch=50, archive=True)
    arch = tmp_path / "cifar-10-python.tar.gz"
    arch.write_bytes(arch.read_bytes()[:3000])
    with pytest.raises(DataFormatError, match=r"cifar-10-python\.tar\.gz"):
        load_arrays("cifar10", "train", tmp_path, cache=False, download=False)


# ----------------------------------------------------------------------------- hostile pickles


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    for proto in (0, 2, 4):
        blob = pickle.dumps({"data": _RunsCode(marker), "labels": [0]}, protocol=proto)
        with pytest.raises(DataFormatError, match=r"^evil: pickle references (posix|os|nt)\.system.*refusing"):
            parse_cifar_batch(blob, "evil", "labels", 10)
    with pytest.raises(DataFormatError, match=r"(__builtin__|builtins)\.eval"):
        safe_unpickle(pickle.dumps(_Evals(), protocol=2), "evil")
    assert not marker.exists()


def test_pickle_allowed_globals_are_restricted():
    # _codecs.encode with any codec but latin-1 (codec lookup imports modules by name).
    blob = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(DataFormatError, match="only latin1"):
        safe_unpickle(blob, "p")
    # NEWOBJ on numpy.ndarray (would allocate any shape): refused, the stand-in is not a type.
    blob = b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85\x81."
    with pytest.raises(DataFormatError, match="^p: "):
        safe_unpickle(blob, "p")
    # BUILD on an allowed global (would set attributes on it).
    blob = b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00aK\x01sb."
    with pytest.raises(DataFormatError, match="modify numpy.dtype"):
        safe_unpickle(blob, "p")


# ----------------------------------------------------------------------------- fuzzing


def _valid_idx_gz() -> bytes:
    return gzip.compress(idx_bytes(np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4), IMAGES_MAGIC), mtime=0)


def _valid_cifar() -> bytes:
    return cifar_batch(2, 10, seed=0)[0]


def _mutate(base: bytes):
    """Valid files with a few bytes changed, inserted or cut: reaches deep parser states."""
    return st.tuples(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=4),
                     st.integers(1, len(base))).map(
        lambda t: bytes(_apply(bytearray(base), t[0]))[: t[1]])


def _apply(buf: bytearray, edits):
    for pos, val in edits:
        buf[pos] = val
    return buf


FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parses_or_format_error(fn, data, source="f"):
    try:
        fn(data)
    except DataFormatError as err:  # the only acceptable failure; anything else fails the test
        assert "\n" not in str(err) and str(err).startswith(str(source))  # one line, naming the file


@FUZZ
@given(st.one_of(st.binary(max_size=200), _mutate(_valid_idx_gz()), _mutate(idx_bytes(np.ones((2, 3, 3), np.uint8), IMAGES_MAGIC))))
def test_fuzz_idx(data):
    _parses_or_format_error(lambda d: parse_idx_images(d, "f"), data)
    _parses_or_format_error(lambda d: parse_idx_labels(d, "f"), data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), _mutate(_valid_cifar())))
def test_fuzz_cifar_pickle(data):
    _parses_or_format_error(lambda d: parse_cifar_batch(d, "f", "labels", 10), data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), _mutate(gzip.compress(b"some payload" * 20))))
def test_fuzz_gunzip(data):
    _parses_or_format_error(lambda d: gunzip(d, "f"), data)


def _small_tar() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        write_tar(Path(d) / "t.tar.gz", {"cifar-10-batches-py/test_batch": b"abc" * 50})
        return (Path(d) / "t.tar.gz").read_bytes()


@FUZZ
@given(st.one_of(st.binary(max_size=300), _mutate(_small_tar())))
def test_fuzz_tar(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.tar.gz"
        path.write_bytes(data)
        _parses_or_format_error(lambda p: read_tar_members(p, {"cifar-10-batches-py/test_batch": "t"}), path, path)


def test_fuzz_helper_rejects_other_errors():
    # The property above would be vacuous if the helper swallowed everything.
    with pytest.raises(ZeroDivisionError):
        _parses_or_format_error(lambda d: 1 / 0, b"")
    with pytest.raises(ReslabError):
        raise DataFormatError("is a ReslabError")
