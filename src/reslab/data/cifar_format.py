"""CIFAR-10/100 "python version" batches (Krizhevsky 2009): each a Python-2 pickle of a dict
with ``data`` (uint8 N x 3072, row-major R, G, B planes of 32x32) and ``labels`` (CIFAR-10) or
``fine_labels`` (CIFAR-100), read from the published tar.gz or unpacked files.

Untrusted bytes, as in :mod:`reslab.data.formats`: pickles are checked opcode by opcode and
never execute code (:mod:`reslab.data.safepickle`), the structure must be CIFAR's exactly, and
tar members are read with a cap per member and on the whole archive.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from reslab.data.formats import check_pair
from reslab.data.safepickle import _Array, _text, safe_unpickle
from reslab.errors import DataFormatError, one_line

MAX_CIFAR_BATCH_BYTES = 1 << 28    # one pickled CIFAR batch
MAX_ARCHIVE_INFLATED = 1 << 30     # everything a CIFAR tar.gz inflates to
CIFAR_SHAPE = (3, 32, 32)
# The restricted unpickler lives in reslab.data.safepickle.

_CIFAR_KEYS = {"batch_label", "data", "labels", "fine_labels", "coarse_labels", "filenames"}


def _int_list(value, n: int | None) -> np.ndarray | None:
    """A list of plain ints (or a 1-D integer array) as int64, or None; checked element by
    element, never converted first (a hostile list may hold anything)."""
    if isinstance(value, _Array):
        a = value.array
        if a is None or a.ndim != 1 or a.dtype.kind not in "iu" or (n is not None and len(a) != n):
            return None
        return a.astype(np.int64)
    if not isinstance(value, list) or (n is not None and len(value) != n):
        return None
    if not all(type(v) is int and -2 ** 63 <= v < 2 ** 63 for v in value):
        return None
    return np.array(value, dtype=np.int64)


def parse_cifar_batch(data: bytes, source: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch -> (uint8 images (N, 3, 32, 32), int64 labels (N,)).

    ``label_key`` is ``"labels"`` for CIFAR-10 and ``"fine_labels"`` for CIFAR-100.  The
    structure is checked exactly (a dict of the known keys, ``data`` a uint8 (N, 3072) array,
    labels N integers, names N strings) before anything is converted.
    """
    obj = safe_unpickle(data, source)
    if not isinstance(obj, dict):
        raise DataFormatError(f"{source}: CIFAR batch must be a dict, got {type(obj).__name__}")
    keys = {}
    for k, v in obj.items():
        name = _text(k)
        if name not in _CIFAR_KEYS or name in keys:
            raise DataFormatError(f"{source}: CIFAR batch has an unexpected key {(name or str(k))[:40]!r}; "
                                  f"expected {', '.join(sorted(_CIFAR_KEYS))}")
        keys[name] = v
    images, labels = keys.get("data"), keys.get(label_key)
    missing = [k for k, v in (("data", images), (label_key, labels)) if v is None]
    if missing:
        raise DataFormatError(f"{source}: CIFAR batch lacks key(s) {', '.join(missing)}; "
                              f"expected 'data' and '{label_key}'")
    per_image = int(np.prod(CIFAR_SHAPE))
    arr = images.array if isinstance(images, _Array) else None
    if arr is None or arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != per_image:
        desc = f"{arr.dtype} array {arr.shape}" if arr is not None else type(images).__name__
        raise DataFormatError(f"{source}: 'data' must be a uint8 array of shape (N, {per_image}), got {desc}")
    label_arr = _int_list(labels, None)
    if label_arr is None:
        raise DataFormatError(f"{source}: '{label_key}' must be a list of integers, got {type(labels).__name__}")
    check_pair(arr, label_arr, num_classes, source)
    for key in ("coarse_labels", "labels", "fine_labels"):
        if key != label_key and key in keys and _int_list(keys[key], len(arr)) is None:
            raise DataFormatError(f"{source}: '{key}' must be a list of {len(arr)} integers")
    names = keys.get("filenames")
    if names is not None and not (isinstance(names, list) and len(names) == len(arr)
                                  and all(isinstance(x, (bytes, str)) for x in names)):
        raise DataFormatError(f"{source}: 'filenames' must be a list of {len(arr)} names")
    if "batch_label" in keys and not isinstance(keys["batch_label"], (bytes, str)):
        raise DataFormatError(f"{source}: 'batch_label' must be a string")
    return arr.reshape((-1, *CIFAR_SHAPE)), label_arr


# --------------------------------------------------------------------------- tar


def read_tar_members(archive: Path, wanted: dict[str, str], max_member_bytes: int = MAX_CIFAR_BATCH_BYTES,
                     max_inflated: int = MAX_ARCHIVE_INFLATED) -> dict[str, bytes]:
    """Read regular-file members of a tar(.gz) into memory without extracting anything.

    ``wanted`` maps member path (e.g. ``cifar-10-batches-py/data_batch_1``) -> key; the
    result maps key -> bytes for the members that were found.  Only exact, relative,
    ``..``-free names of regular files are read, so links, devices and path-traversal
    entries are ignored rather than followed.  The archive is read in one pass and never
    past ``max_inflated`` bytes of tar stream (skipping a member still inflates it).
    """
    source = str(archive)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if member.offset_data + max(member.size, 0) > max_inflated:
                    raise DataFormatError(f"{source}: inflates to more than {max_inflated} bytes, more than any "
                                          "CIFAR archive; not a dataset file")
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts or not member.isreg():
                    continue
                key = wanted.get(str(name))  # PurePosixPath drops "./" prefixes
                if key is None:
                    continue
                if member.size > max_member_bytes:
                    raise DataFormatError(f"{source}: member {member.name} is {member.size} bytes, "
                                          f"larger than any CIFAR batch")
                fh = tar.extractfile(member)
                found[key] = fh.read() if fh is not None else b""
    except DataFormatError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as err:
        raise DataFormatError(f"{source}: not a readable tar.gz archive ({one_line(err)}); re-download it") from None
    return found
