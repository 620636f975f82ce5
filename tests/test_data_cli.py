"""``reslab data``: exit codes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from datafiles import isolated_data_env, make_idx_dataset  # noqa: F401

from reslab.cli import main

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("reslab data: error: ")
    return err


def test_unknown_name_exit_2(capsys):
    assert main(["data", "info", "imagenet"]) == 2
    err = one_line_error(capsys)
    assert "unknown dataset 'imagenet'" in err and "fashion-mnist, mnist, cifar10, cifar100, synthetic" in err


def test_malformed_file_exit_2(tmp_path, capsys):
    make_idx_dataset(tmp_path / "mnist")
    bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(b"\x00\x00\x08\x02" + bad.read_bytes()[4:])  # gzip magic gone -> raw IDX, wrong magic
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert str(bad) in err and "bad IDX magic number 0x00000802" in err


def test_missing_dataset_exit_2_without_download(capsys):
    assert main(["data", "info", "cifar100"]) == 2
    err = one_line_error(capsys)
    assert "dataset cifar100 not found" in err and "cifar-100-python.tar.gz" in err


def test_download_without_network_exit_2(capsys):
    assert main(["data", "download", "cifar10"]) == 2
    assert "download failed" in one_line_error(capsys)


def test_info_and_verify_on_local_files(tmp_path, capsys):
    make_idx_dataset(tmp_path / "mnist", n_train=12, n_test=5)
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train        12 images, 1x28x28 uint8" in out and "--data-dir" in out
    # Random stand-in files cannot match the published MNIST checksums.
    assert main(["data", "verify", "mnist", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("BAD ") == 4 and "0 of 4 files match" in out


def test_list_and_synthetic(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic"):
        assert f"\n{name} " in out
    assert main(["data", "info", "synthetic"]) == 0
    assert "10000 images, 3x32x32" in capsys.readouterr().out


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_verify_real_fashion_mnist(capsys):
    assert main(["data", "verify", "fashion-mnist"]) == 0
    assert "4 of 4 files match the published checksums" in capsys.readouterr().out
