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
    """Writes pickles the way Python 2 + numpy wrote the CIFAR batches: str and bytes as
    BINSTRING opcodes (Python 2 ``str``) and arrays via ``numpy.core.multiarray``."""

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


def cifar_batch(n: int, num_classes: int, seed: int, label_key: str = "labels"):
    """(pickle bytes, images (n, 3, 32, 32), labels) for one batch in the real format."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).tolist()
    obj = {"batch_label": "training batch", label_key: labels, "data": data,
           "filenames": [f"img_{i}.png" for i in range(n)]}
    if label_key == "fine_labels":
        obj["coarse_labels"] = [x // 5 for x in labels]
    return py2_pickle(obj), data.reshape(n, 3, 32, 32), np.array(labels, dtype=np.int64)


def make_cifar10(root: Path, per_batch: int = 4, archive: bool = False):
    """``root/cifar-10-batches-py/`` (or ``root/cifar-10-python.tar.gz``); returns {split: arrays}."""
    members, out = {}, {}
    parts = []
    for i in range(1, 6):
        blob, x, y = cifar_batch(per_batch, 10, seed=i)
        members[f"data_batch_{i}"] = blob
        parts.append((x, y))
    out["train"] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    blob, x, y = cifar_batch(per_batch, 10, seed=99)
    members["test_batch"] = blob
    out["test"] = (x, y)
    members["batches.meta"] = py2_pickle({"label_names": ["airplane"] * 10, "num_vis": 3072})
    _write_cifar(root, "cifar-10-batches-py", "cifar-10-python.tar.gz", members, archive)
    return out


def make_cifar100(root: Path, n: int = 6, archive: bool = False):
    members, out = {}, {}
    for split, seed in (("train", 1), ("test", 2)):
        blob, x, y = cifar_batch(n, 100, seed=seed, label_key="fine_labels")
        members[split] = blob
        out[split] = (x, y)
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
