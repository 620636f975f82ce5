"""``load_arrays``: a dataset split as uint8 numpy arrays, plus the train/val split and the
synthetic dataset.

Arrays are always ``images`` uint8 (N, C, H, W) and ``labels`` int64 (N,), whatever the
file format; see :mod:`reslab.data.store` for where files are searched.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from reslab.data import cifar_format, formats, parsed_cache, store
from reslab.data.registry import DatasetInfo, check_split, get_info
from reslab.errors import DataFormatError, ReslabError


def load_arrays(name: str, split: str = "train", data_dir: str | os.PathLike | None = None, *,
                synthetic_size: int | None = None, synthetic_shape: tuple[int, int, int] = (3, 32, 32),
                synthetic_classes: int = 10, seed: int = 0, download: bool = True,
                cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a dataset as ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    ``data_dir`` is searched first (see :mod:`reslab.data.store` for the full order);
    if no copy is found and ``download`` is true the published files are fetched into
    the user cache and checked against their MD5.  ``cache`` keeps the parsed arrays
    as ``.npz`` in the user cache (written only after the files parsed cleanly).

    The ``synthetic_*`` arguments and ``seed`` only apply to ``name="synthetic"``.

    Raises ReslabError for an unknown name/split or missing files and DataFormatError
    (naming the file) for a malformed one.
    """
    info = get_info(name)
    check_split(split)
    if info.format == "synthetic":
        size = synthetic_size if synthetic_size is not None else (info.num_train if split == "train" else info.num_test)
        return make_synthetic(split, size, tuple(synthetic_shape), synthetic_classes, seed)

    loc = store.locate(info, split, data_dir)
    if loc is None:
        if not download:
            raise ReslabError(store.not_found_message(info, data_dir))
        store.download(info, log=lambda msg: print(f"reslab: {msg}", file=sys.stderr))
        loc = store.locate(info, split, data_dir)
        if loc is None:  # pragma: no cover - download() verified every file it wrote
            raise ReslabError(store.not_found_message(info, data_dir, reason="files missing after download"))

    cache_path = parsed_cache.parsed_cache_path(info, split, loc.files()) if cache else None
    if cache_path is not None:
        hit = parsed_cache.read_parsed(cache_path, info)
        if hit is not None:
            return hit
    images, labels = parse_location(info, split, loc)
    if cache_path is not None:
        parsed_cache.write_parsed(cache_path, images, labels)
    return images, labels


def parse_location(info: DatasetInfo, split: str, loc: store.Location) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate the files of ``loc``; nothing is cached here."""
    if info.format == "idx":
        img_name, lab_name = info.split_files[split]
        img_path, lab_path = loc.paths[img_name], loc.paths[lab_name]
        images = formats.read_idx_images(img_path)
        labels = formats.read_idx_labels(lab_path)
        formats.check_pair(images, labels, info.num_classes, f"{img_path} + {lab_path.name}")
        source = str(img_path)
    else:
        if loc.archive is not None:
            wanted = {str(loc.paths[n]): n for n in info.split_files[split]}
            blobs = cifar_format.read_tar_members(loc.archive, wanted)
            missing = [n for n in info.split_files[split] if n not in blobs]
            if missing:
                raise DataFormatError(f"{loc.archive}: archive lacks {', '.join(f'{info.folder}/{m}' for m in missing)}")
            sources = {n: f"{loc.archive}:{info.folder}/{n}" for n in blobs}
        else:
            blobs = {n: formats.read_file(p, cifar_format.MAX_CIFAR_BATCH_BYTES, "CIFAR batch") for n, p in loc.paths.items()}
            sources = {n: str(p) for n, p in loc.paths.items()}
        parts = [cifar_format.parse_cifar_batch(blobs[n], sources[n], info.label_key, info.num_classes)
                 for n in info.split_files[split]]
        images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        source = sources[info.split_files[split][0]]
    if images.shape[1:] != info.shape:
        raise DataFormatError(f"{source}: images are {'x'.join(map(str, images.shape[1:]))}, "
                              f"{info.name} images are {'x'.join(map(str, info.shape))}")
    return np.ascontiguousarray(images), labels


def make_synthetic(split: str, size: int, shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable stand-in dataset: each class is a smooth random prototype image, each
    sample its class prototype blended with uniform noise (70/30).

    The prototypes depend only on ``seed`` (shared by train and test, so test accuracy
    means something); the samples also depend on ``split``.  Deterministic.
    """
    if size < 0 or num_classes < 1 or len(shape) != 3 or min(shape) < 1:
        raise ReslabError(f"synthetic dataset needs size >= 0, classes >= 1 and a (C, H, W) shape of "
                          f"positive sizes; got size={size}, classes={num_classes}, shape={tuple(shape)}")
    c, h, w = shape
    proto_rng = np.random.default_rng([seed, 0])
    # Low-frequency prototypes (4x4 blocks upsampled) survive the 4-pixel crop and flip.
    coarse = proto_rng.uniform(0, 255, size=(num_classes, c, 4, 4))
    rows = np.minimum(np.arange(h) * 4 // h, 3)
    cols = np.minimum(np.arange(w) * 4 // w, 3)
    protos = coarse[:, :, rows][:, :, :, cols]
    protos = protos.astype(np.float32)
    rng = np.random.default_rng([seed, 1 if split == "train" else 2])
    labels = rng.integers(0, num_classes, size=size, dtype=np.int64)
    images = np.empty((size, c, h, w), dtype=np.uint8)
    # In chunks, so a CIFAR-sized set never needs a float copy of the whole array.
    for i in range(0, size, 2048):
        j = min(i + 2048, size)
        noise = rng.integers(0, 256, size=(j - i, c, h, w), dtype=np.uint8)
        images[i:j] = np.rint(0.7 * protos[labels[i:j]] + 0.3 * noise)
    return images, labels


def make_splits(num_train: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(num_train)`` into disjoint, sorted (train_idx, val_idx) int64 arrays.

    A seeded random subset of ``val_size`` indices is held out for validation, as in
    He et al. 2016 §4.2 (45k/5k on CIFAR-10); the same arguments give the same split
    (numpy's PCG64 ``default_rng``; callers should still record the indices they used).
    """
    if num_train < 0 or not 0 <= val_size <= num_train:
        raise ReslabError(f"val size must be between 0 and the {num_train} training images, got {val_size}")
    perm = np.random.default_rng([seed, 0x5EED]).permutation(num_train)
    return np.sort(perm[val_size:]).astype(np.int64), np.sort(perm[:val_size]).astype(np.int64)
