"""Support for the data tests (no tests here): small files in the real on-disk formats, and an
environment (no network, a temporary cache, no $RESLAB_DATA) for every test that imports
the ``isolated_data_env`` fixture."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from reslab.data import store

REAL_FETCH = store.fetch
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    """Cache in tmp, no $RESLAB_DATA / mirror, and any download attempt fails like no network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("RESLAB_DATA", raising=False)
    monkeypatch.delenv("RESLAB_DATA_MIRROR", raising=False)

    def no_network(url, dest, timeout=None, **limits):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(store, "fetch", no_network)
    yield


# ----------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX encoding of a uint8 array: magic, big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    """Write ``{prefix}-images-idx3-ubyte[.gz]`` (images (N, H, W)) and the labels file."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr, magic in (("images-idx3", images, IMAGES_MAGIC), ("labels-idx1", labels, LABELS_MAGIC)):
        data = idx_bytes(arr, magic)
        name = f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)


def make_idx_dataset(folder: Path, n_train: int = 12, n_test: int = 5, seed: int = 0, gz: bool = True,
                     size: int = 28, num_classes: int = 10):
    """An MNIST-layout folder; returns {split: (images (N, 1, H, W), labels)}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = rng.integers(0, num_classes, size=n).astype(np.uint8)
        write_idx_split(folder, prefix, images, labels, gz=gz)
        out[split] = (images[:, None], labels.astype(np.int64))
    return out


# ----------------------------------------------------------------------------- CIFAR


class Py2Pickler(pickle._Pickler):
    """Today's pickler with str and bytes written as BINSTRING opcodes (Python 2 ``str``).
    Arrays come out the way numpy 2 reduces them (``dtype('u1', False, True)``): the form a
    Python-3 re-save of a batch has.  For the bytes of the real 2009 batches see
    :class:`Py2CifarWriter`."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        if isinstance(obj, str):
            obj = obj.encode("latin-1")
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + n.to_bytes(4, "little")
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 2 names the module numpy._core; the real files (numpy 1.x, 2009) say numpy.core.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


class Py2CifarWriter:
    """Protocol-2 pickle opcodes exactly as Python 2's ``cPickle.dump(obj, f, 2)`` wrote them
    for numpy 1.x arrays, dicts, lists, ints and ``str``: assembled by hand, so that the
    bytes do not depend on today's pickle or numpy.

    What cPickle does, and this copies: memo slots are numbered from 1 (BINPUT 1, 2, ...);
    a ``str`` shorter than 2 bytes is never memoized, nor are the tuples numpy builds on the
    fly (reference count 1); a global is memoized once and fetched again with BINGET;
    containers go in batches of 1000 (MARK ... APPENDS/SETITEMS; a lone last item: APPEND/
    SETITEM).  numpy 1.x reduces an array to ``_reconstruct(ndarray, (0,), 'b')`` + BUILD
    ``(1, shape, dtype, is_fortran, raw bytes)`` and a dtype to ``dtype('u1', 0, 1)`` (ints,
    not bools) + BUILD ``(3, '|', None, None, None, -1, -1, 0)``.  The keys and values of a
    dict are memoized (Python <= 2.6 walked a dict through ``iteritems``, which holds a
    reference to each; the batches were written in 2009, before 2.7).
    tests/data/py2_cifar/ holds files that Python 2.7 + numpy 1.16 wrote; the tests check
    this writer against them byte for byte.
    """

    BATCH = 1000

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.slots = 0
        self.globals: dict[tuple[str, str], int] = {}

    def put(self) -> None:
        self.slots += 1
        n = self.slots
        self.out += b"q" + bytes([n]) if n < 256 else b"r" + n.to_bytes(4, "little")  # BINPUT / LONG_BINPUT

    def get(self, n: int) -> None:
        self.out += b"h" + bytes([n]) if n < 256 else b"j" + n.to_bytes(4, "little")  # BINGET / LONG_BINGET

    def string(self, s, memo: bool = True) -> None:
        b = s.encode("latin-1") if isinstance(s, str) else bytes(s)
        n = len(b)
        self.out += (b"U" + bytes([n]) if n < 256 else b"T" + n.to_bytes(4, "little")) + b  # SHORT_BINSTRING / BINSTRING
        if memo and n >= 2:
            self.put()

    def integer(self, v: int) -> None:
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])  # BININT1
        elif 0 <= v < 65536:
            self.out += b"M" + v.to_bytes(2, "little")  # BININT2
        else:
            self.out += b"J" + v.to_bytes(4, "little", signed=True)  # BININT

    def global_(self, module: str, name: str) -> None:
        key = (module, name)
        if key in self.globals:
            self.get(self.globals[key])
            return
        self.out += b"c" + f"{module}\n{name}\n".encode()  # GLOBAL
        self.put()
        self.globals[key] = self.slots

    def small_tuple(self, items) -> None:
        """A tuple of 1-3 ints, not memoized (numpy's shape tuples)."""
        for v in items:
            self.integer(v)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(items)]  # TUPLE1/2/3

    def dtype(self, dt: np.dtype) -> None:
        self.global_("numpy", "dtype")
        self.string(f"{dt.kind}{dt.itemsize}", memo=False)  # a fresh str: reference count 1
        self.out += b"K\x00K\x01\x87R"  # (spec, 0, 1) REDUCE
        self.put()  # cPickle always memoizes what a REDUCE with a tuple state built
        order = "|" if dt.itemsize == 1 else ("<" if dt.byteorder in "<=" else ">")
        self.out += b"(K\x03" + b"U\x01" + order.encode() + b"NNN" + b"J\xff\xff\xff\xff" * 2 + b"K\x00tb"

    def array(self, a: np.ndarray) -> None:
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.out += b"K\x00\x85U\x01b\x87R"  # (ndarray, (0,), 'b') REDUCE
        self.put()
        self.out += b"(K\x01"
        self.small_tuple(a.shape)
        self.dtype(a.dtype)
        raw = np.ascontiguousarray(a).tobytes()
        self.out += b"\x89"  # NEWFALSE: not Fortran-ordered
        self.string(raw, memo=False)  # the raw bytes: a fresh str, reference count 1
        self.out += b"tb"  # TUPLE, BUILD

    def value(self, v) -> None:
        if isinstance(v, dict):
            self.container(b"}", list(v.items()), b"s", b"u")
        elif isinstance(v, list):
            self.container(b"]", v, b"a", b"e")
        elif isinstance(v, np.ndarray):
            self.array(v)
        elif isinstance(v, (str, bytes)):
            self.string(v)
        elif isinstance(v, int):
            self.integer(v)
        else:
            raise TypeError(f"no Python 2 CIFAR form for {type(v).__name__}")

    def container(self, empty: bytes, items: list, one: bytes, many: bytes) -> None:
        self.out += empty
        self.put()
        for start in range(0, len(items), self.BATCH):
            chunk = items[start:start + self.BATCH]
            if len(chunk) > 1:
                self.out += b"("  # MARK
            for item in chunk:
                for part in (item if empty == b"}" else (item,)):
                    self.value(part)
            self.out += one if len(chunk) == 1 else many

    def dumps(self, obj) -> bytes:
        self.value(obj)
        return bytes(self.out + b".")


def py2_cifar_bytes(obj) -> bytes:
    """``obj`` as Python 2 + numpy 1.x pickled it (see :class:`Py2CifarWriter`)."""
    return Py2CifarWriter().dumps(obj)


# The key order of the published batches (what ``pickle.load`` of them lists first to last).
CIFAR10_KEYS = ("batch_label", "labels", "data", "filenames")
CIFAR100_KEYS = ("filenames", "batch_label", "fine_labels", "coarse_labels", "data")


def cifar_batch(n: int, num_classes: int, seed: int, label_key: str = "labels", batch_label: str = "training batch"):
    """(pickle bytes, images (n, 3, 32, 32), labels) for one batch, byte for byte in the form
    of the published batches (Python 2 + numpy 1.x; :class:`Py2CifarWriter`)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).tolist()
    fields = {"batch_label": batch_label, label_key: labels, "data": data,
              "filenames": [f"img_{seed}_{i:06d}.png" for i in range(n)]}
    if label_key == "fine_labels":
        fields["coarse_labels"] = [x // 5 for x in labels]
    order = CIFAR100_KEYS if label_key == "fine_labels" else CIFAR10_KEYS
    return py2_cifar_bytes({k: fields[k] for k in order}), data.reshape(n, 3, 32, 32), np.array(labels, dtype=np.int64)


def make_cifar10(root: Path, per_batch: int = 4, archive: bool = False):
    """``root/cifar-10-batches-py/`` (or ``root/cifar-10-python.tar.gz``): data_batch_1..5,
    test_batch and batches.meta in the published bytes' form; returns {split: arrays}."""
    members, out = {}, {}
    parts = []
    for i in range(1, 6):
        blob, x, y = cifar_batch(per_batch, 10, seed=i, batch_label=f"training batch {i} of 5")
        members[f"data_batch_{i}"] = blob
        parts.append((x, y))
    out["train"] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    blob, x, y = cifar_batch(per_batch, 10, seed=99, batch_label="testing batch 1 of 1")
    members["test_batch"] = blob
    out["test"] = (x, y)
    members["batches.meta"] = py2_cifar_bytes({"num_cases_per_batch": per_batch,
                                               "label_names": [f"class{i}" for i in range(10)], "num_vis": 3072})
    _write_cifar(root, "cifar-10-batches-py", "cifar-10-python.tar.gz", members, archive)
    return out


def make_cifar100(root: Path, n: int = 6, archive: bool = False):
    members, out = {}, {}
    for split, seed, label in (("train", 1, "training"), ("test", 2, "testing")):
        blob, x, y = cifar_batch(n, 100, seed=seed, label_key="fine_labels", batch_label=f"{label} batch 1 of 1")
        members[split] = blob
        out[split] = (x, y)
    members["meta"] = py2_cifar_bytes({"fine_label_names": [f"fine{i}" for i in range(100)],
                                       "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    _write_cifar(root, "cifar-100-python", "cifar-100-python.tar.gz", members, archive)
    return out


def _write_cifar(root: Path, folder: str, archive_name: str, members: dict[str, bytes], archive: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if not archive:
        (root / folder).mkdir(exist_ok=True)
        for name, blob in members.items():
            (root / folder / name).write_bytes(blob)
        return
    write_tar(root / archive_name, {f"{folder}/{name}": blob for name, blob in members.items()})


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tar.addfile(ti, io.BytesIO(blob))
