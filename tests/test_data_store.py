"""Where datasets are found, checksummed downloads, verification and the parsed-array cache."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import urllib.error
from dataclasses import replace

import numpy as np
import pytest
from datafiles import REAL_FETCH, isolated_data_env, make_cifar10, make_idx_dataset  # noqa: F401

from reslab.data import DATASETS, FileSpec, get_info, load_arrays
from reslab.data import datasets as datasets_mod
from reslab.data import store
from reslab.data.verify import verify
from reslab.errors import DataFormatError, ReslabError


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mnist_without_system(tmp_path, monkeypatch):
    """MNIST whose 'system copy' folder is a temporary one."""
    system = tmp_path / "system"
    monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], system_dirs=(str(system),)))
    return system


def n_train(data_dir=None) -> int:
    return len(load_arrays("mnist", "train", data_dir, cache=False, download=False)[0])


def test_get_info():
    assert list(DATASETS) == ["fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic"]
    assert get_info("CIFAR-10") is DATASETS["cifar10"]
    info = get_info("fashion-mnist")
    assert info.shape == (1, 28, 28) and info.num_classes == 10 and len(info.class_names) == 10
    assert get_info("cifar10").default_val_size == 5000 and len(get_info("cifar100").class_names) == 100
    with pytest.raises(ReslabError, match="unknown dataset 'imagenet'; valid names: fashion-mnist, mnist, cifar10"):
        get_info("imagenet")
    with pytest.raises(ReslabError, match="unknown split 'val'"):
        load_arrays("synthetic", "val")


def test_lookup_order(tmp_path, monkeypatch, mnist_without_system):
    data_dir, env_root, system = tmp_path / "dd", tmp_path / "env", mnist_without_system
    cache = tmp_path / "xdg-cache" / "reslab" / "mnist"
    for folder, n in ((data_dir / "mnist", 1), (env_root / "mnist", 2), (system, 3), (cache, 4)):
        make_idx_dataset(folder, n_train=n)
    monkeypatch.setenv("RESLAB_DATA", str(env_root))
    assert n_train(data_dir) == 1           # 1. --data-dir
    shutil.rmtree(data_dir / "mnist")
    assert n_train(data_dir) == 2           # 2. $RESLAB_DATA
    shutil.rmtree(env_root / "mnist")
    assert n_train(data_dir) == 3           # 3. system copy
    shutil.rmtree(system)
    assert n_train(data_dir) == 4           # 4. user cache
    assert store.locate(DATASETS["mnist"], "train", data_dir).origin == "cache"
    shutil.rmtree(cache)
    with pytest.raises(ReslabError, match="dataset mnist not found; put train-images-idx3-ubyte.gz"):
        n_train(data_dir)


def test_data_dir_layouts(tmp_path, mnist_without_system):
    make_idx_dataset(tmp_path / "flat", n_train=5)                 # files directly in --data-dir
    assert n_train(tmp_path / "flat") == 5
    make_idx_dataset(tmp_path / "tv" / "MNIST" / "raw", n_train=6)  # torchvision's layout
    assert n_train(tmp_path / "tv") == 6
    make_idx_dataset(tmp_path / "raw", n_train=7, gz=False)        # gunzipped by hand
    assert n_train(tmp_path / "raw") == 7


def test_reslab_data_root_top_level_not_trusted(tmp_path, monkeypatch, mnist_without_system):
    # A shared root's top-level IDX files could be any MNIST-like dataset: only NAME/ counts.
    make_idx_dataset(tmp_path / "root", n_train=5)
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path / "root"))
    with pytest.raises(ReslabError, match="not found"):
        n_train()


def test_reslab_data_root_cifar_layout(tmp_path, monkeypatch):
    make_cifar10(tmp_path / "root", per_batch=2)  # root/cifar-10-batches-py, torchvision's layout
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path / "root"))
    assert len(load_arrays("cifar10", "test", cache=False, download=False)[0]) == 2
    assert store.locate(DATASETS["cifar10"], "test").origin == "$RESLAB_DATA"


def test_split_needs_all_its_files(tmp_path, mnist_without_system):
    make_idx_dataset(tmp_path / "mnist", n_train=5)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert n_train(tmp_path) == 5
    with pytest.raises(ReslabError, match="not found"):
        load_arrays("mnist", "test", tmp_path, cache=False, download=False)


# ----------------------------------------------------------------------------- download


@pytest.fixture
def mirror(tmp_path, monkeypatch, mnist_without_system):
    """A file:// mirror of 'mnist' whose published MD5s are those of its small files."""
    folder = tmp_path / "mirror"
    expected = make_idx_dataset(folder, n_train=9, n_test=4)
    info = DATASETS["mnist"]
    specs = tuple(FileSpec(s.name, md5(folder / s.name)) for s in info.downloads)
    monkeypatch.setitem(DATASETS, "mnist", replace(info, downloads=specs, base_url=folder.as_uri() + "/"))
    monkeypatch.setattr(store, "fetch", REAL_FETCH)
    return folder, expected


def test_download_from_file_url_into_cache(mirror):
    _, expected = mirror
    x, y = load_arrays("mnist", "test")
    np.testing.assert_array_equal(x, expected["test"][0])
    np.testing.assert_array_equal(y, expected["test"][1])
    cache = store.dataset_cache_dir(DATASETS["mnist"])
    assert sorted(p.name for p in cache.iterdir() if p.is_file()) == sorted(s.name for s in DATASETS["mnist"].downloads)
    assert store.locate(DATASETS["mnist"], "train").origin == "cache"


def test_download_checksum_mismatch_deletes_file(mirror, monkeypatch):
    folder, _ = mirror
    info = DATASETS["mnist"]
    bad = tuple(replace(s, md5="0" * 32) if s.name.startswith("t10k-images") else s for s in info.downloads)
    monkeypatch.setitem(DATASETS, "mnist", replace(info, downloads=bad))
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte\.gz: downloaded file has MD5 [0-9a-f]{32}, "
                                              r"expected 0{32}; deleted it"):
        load_arrays("mnist", "train")
    cache = store.dataset_cache_dir(info)
    assert not any("t10k-images" in p.name for p in cache.iterdir())  # neither final nor temp file
    assert not (cache / "parsed").exists()


def test_broken_download_deleted(mirror, monkeypatch):
    def half_then_fail(url, dest, timeout=None, **limits):
        dest.write_bytes(b"partial")
        raise ConnectionResetError("connection reset")

    monkeypatch.setattr(store, "fetch", half_then_fail)
    with pytest.raises(ReslabError, match="download failed: .*connection reset"):
        load_arrays("mnist", "train")
    assert list(store.dataset_cache_dir(DATASETS["mnist"]).iterdir()) == []


def test_mirror_env_overrides_address(mirror, monkeypatch):
    folder, expected = mirror
    monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], base_url="http://unreachable.invalid/"))
    monkeypatch.setenv("RESLAB_DATA_MIRROR", folder.as_uri())
    np.testing.assert_array_equal(load_arrays("mnist", "train")[1], expected["train"][1])


def test_no_network_says_what_to_put_where(mnist_without_system):
    with pytest.raises(ReslabError) as err:
        load_arrays("mnist", "train")
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("network disabled in tests", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 str(store.dataset_cache_dir(DATASETS["mnist"])), "$RESLAB_DATA/mnist",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/"):
        assert part in msg
    with pytest.raises(ReslabError, match="cifar-10-python.tar.gz .or its extracted cifar-10-batches-py/ folder."):
        load_arrays("cifar10", "train")


def test_fetch_never_called_when_found(tmp_path, monkeypatch, mnist_without_system):
    make_idx_dataset(tmp_path / "mnist")
    monkeypatch.setattr(store, "fetch", lambda *a, **k: pytest.fail("downloaded although present"))
    assert n_train(tmp_path) == 12


# ----------------------------------------------------------------------------- parsed cache


def test_parsed_cache_written_and_used(tmp_path, monkeypatch, mnist_without_system):
    make_idx_dataset(tmp_path / "mnist", n_train=8)
    x, y = load_arrays("mnist", "train", tmp_path, download=False)
    parsed = list((store.dataset_cache_dir(DATASETS["mnist"]) / "parsed").glob("train-*.npz"))
    assert len(parsed) == 1
    monkeypatch.setattr(datasets_mod, "parse_location", lambda *a: pytest.fail("re-parsed despite cache"))
    x2, y2 = load_arrays("mnist", "train", tmp_path, download=False)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_parsed_cache_follows_file_changes(tmp_path, mnist_without_system):
    make_idx_dataset(tmp_path / "mnist", n_train=8, seed=0)
    a = load_arrays("mnist", "train", tmp_path, download=False)[0]
    make_idx_dataset(tmp_path / "mnist", n_train=5, seed=1)
    b = load_arrays("mnist", "train", tmp_path, download=False)[0]
    assert len(a) == 8 and len(b) == 5
    assert len(list((store.dataset_cache_dir(DATASETS["mnist"]) / "parsed").glob("train-*.npz"))) == 1


def test_malformed_file_never_cached(tmp_path, mnist_without_system):
    make_idx_dataset(tmp_path / "mnist", n_train=8)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataFormatError, match=str(path)):
        load_arrays("mnist", "train", tmp_path, download=False)
    assert not (store.dataset_cache_dir(DATASETS["mnist"]) / "parsed").exists()


# ----------------------------------------------------------------------------- verify


def test_verify_idx(mirror):
    folder, _ = mirror
    info = DATASETS["mnist"]
    assert all(c.ok for c in verify(info, folder))
    # Re-compressed (different gzip header, same content) and gunzipped copies verify by content.
    info = replace(info, downloads=tuple(replace(s, content_md5=hashlib.md5(gzip.decompress((folder / s.name).read_bytes()))
                                                 .hexdigest()) for s in info.downloads))
    img = folder / "train-images-idx3-ubyte.gz"
    img.write_bytes(gzip.compress(gzip.decompress(img.read_bytes()), mtime=12345))
    lab = folder / "train-labels-idx1-ubyte.gz"
    (folder / "train-labels-idx1-ubyte").write_bytes(gzip.decompress(lab.read_bytes()))
    lab.unlink()
    checks = {c.path.name: c for c in verify(info, folder)}
    assert checks["train-images-idx3-ubyte.gz"].ok and "re-compressed" in checks["train-images-idx3-ubyte.gz"].detail
    assert checks["train-labels-idx1-ubyte"].ok and "uncompressed" in checks["train-labels-idx1-ubyte"].detail
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\0")
    assert not {c.path.name: c for c in verify(info, folder)}["train-labels-idx1-ubyte"].ok


def test_verify_cifar_dir(tmp_path, monkeypatch):
    make_cifar10(tmp_path, per_batch=2)
    folder = tmp_path / "cifar-10-batches-py"
    info = replace(DATASETS["cifar10"], member_md5={n: md5(folder / n) for n in DATASETS["cifar10"].member_md5})
    assert all(c.ok for c in verify(info, tmp_path))
    (folder / "data_batch_3").write_bytes(b"changed")
    bad = [c.path.name for c in verify(info, tmp_path) if not c.ok]
    assert bad == ["data_batch_3"]


def test_fetch_reports_missing_file_url(tmp_path):
    with pytest.raises(urllib.error.URLError):
        REAL_FETCH((tmp_path / "absent").as_uri(), tmp_path / "out")
