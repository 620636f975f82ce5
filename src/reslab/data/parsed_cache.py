"""The cache of parsed arrays: a dataset's split as ``uint8`` images and ``int64`` labels in
an ``.npz`` under the user cache, keyed by the source files' paths, sizes and modification
times, so that a second run skips decoding."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from reslab.data.registry import DatasetInfo
from reslab.data.store import dataset_cache_dir
from reslab.fileio import atomic_write

PARSED_CACHE_VERSION = 1


def parsed_cache_path(info: DatasetInfo, split: str, sources: list[Path]) -> Path:
    """Cache file for the arrays parsed from ``sources``; the key changes with their path,
    size or modification time, so an edited or replaced file is re-parsed."""
    ident = [PARSED_CACHE_VERSION, info.name, split]
    for p in sources:
        st = p.stat()
        ident.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    key = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]
    return dataset_cache_dir(info) / "parsed" / f"{split}-{key}.npz"


def read_parsed(path: Path, info: DatasetInfo):
    """(images, labels) from a parsed cache file, or None if absent or unusable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except Exception:  # noqa: BLE001 - a damaged cache is simply re-parsed
        return None
    if images.dtype != np.uint8 or images.shape[1:] != info.shape or labels.dtype != np.int64 \
            or labels.shape != (len(images),):
        return None
    return images, labels


def write_parsed(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Best-effort atomic write (:func:`reslab.fileio.atomic_write`); stale caches of the split are removed."""
    try:
        atomic_write(path, lambda f: np.savez(f, images=images, labels=labels))
        split = path.name.split("-")[0]
        for old in path.parent.glob(f"{split}-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache only costs re-parsing next time
