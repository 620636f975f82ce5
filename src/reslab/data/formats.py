"""Parsers for the two on-disk formats reslab reads: IDX (MNIST, Fashion-MNIST) here, and the
CIFAR-10/100 "python version" pickled batches in :mod:`reslab.data.cifar_format`.

Everything here is numpy-only and treats its input as untrusted bytes: any malformed
input raises :class:`~reslab.errors.DataFormatError` naming the file, never another
exception type, and unpickling can never execute code (:mod:`reslab.data.safepickle`).

Budgets: every size a file declares (IDX dimensions, gzip output, pickle string and frame
lengths, array shapes, tar members) is compared with the bytes actually there and with a
ceiling from the format (``MAX_*`` below) before anything is allocated; gzip is inflated in
bounded chunks, linear in its input; pickles are checked opcode by opcode before they are
loaded (:func:`reslab.data.pickle_opcodes.check_pickle_ops`) and must have the exact CIFAR structure.
``benchmarks/fuzz_parsers.py`` fuzzes all of it under a memory ceiling and a time limit.

Formats:

* IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic ``00 00 08 D``
  (``08`` = unsigned byte, ``D`` = number of dimensions), then ``D`` big-endian uint32
  sizes, then the row-major data.  Images are ``0x00000803`` (N, H, W), labels
  ``0x00000801`` (N,).  Files may be gzipped.
* CIFAR (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html): each batch is a
  Python-2 pickle of a dict with ``data`` (uint8 N x 3072, row-major R, G, B planes of
  32x32) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from reslab.errors import DataFormatError, one_line

# Budgets.  Every size a file declares is compared with these ceilings (and with the
# file's own size) before anything is allocated.  The biggest real files: Fashion-MNIST /
# MNIST train images 47,040,016 bytes raw; a CIFAR-100 train batch about 161 MB; the CIFAR
# archives about 180 MB inflated.  Each ceiling leaves a margin of 1.5-5x.
MAX_IDX_BYTES = 1 << 28            # one IDX file, raw (inflated)
# Refuse to inflate anything larger than this (gunzip's default cap).
MAX_INFLATED_BYTES = 1 << 30
# DEFLATE cannot compress better than about 1032:1, so a gzip of N bytes never inflates to
# more than this many times N (plus a header's worth): a larger declared size is a lie.
GZIP_MAX_RATIO = 1032
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def read_file(path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, refused (before reading) when the file is larger than ``limit``."""
    from reslab.errors import ReslabError

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise DataFormatError(f"{path}: {size} bytes, more than any {what} ({limit} bytes); "
                                      "not a dataset file")
            data = f.read(limit + 1)
    except OSError as err:
        raise ReslabError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) > limit:  # the file grew while we read it
        raise DataFormatError(f"{path}: more than {limit} bytes; not a {what}")
    return data


# --------------------------------------------------------------------------- IDX


def gunzip(data: bytes, source: str, limit: int = MAX_INFLATED_BYTES, expect=None) -> bytes | bytearray:
    """Inflate a (possibly multi-member) gzip stream, or raise DataFormatError naming ``source``.

    zlib is driven by hand, in bounded chunks of input and output, so that the output is
    capped at ``limit`` (a gzip bomb stops there, not after inflating gigabytes), the work
    is linear in the input (many tiny members cost no re-copying of the rest), and every
    failure maps to one error type.  ``expect(out)``, if given, sees the output so far and
    may return the total size the content declares (an IDX header): output beyond it is
    then refused as soon as it appears, and a declared size above ``limit`` at once.
    """
    view = memoryview(data).cast("B")
    n = len(view)
    out = bytearray()
    pos, members, declared = 0, 0, None
    while pos < n:
        if view[pos:pos + 2] != b"\x1f\x8b":
            if members and not any(view[pos:]):  # trailing zero padding is legal (gzip(1) ignores it)
                break
            what = "trailing bytes after the gzip data" if members else "not gzip data"
            raise DataFormatError(f"{source}: corrupt gzip data ({what}); re-download the file")
        # wbits=31: expect a gzip header and trailer (CRC32 + length are checked by zlib).
        d = zlib.decompressobj(wbits=31)
        step = 256  # small first reads: a member of a few bytes costs a few bytes
        while not d.eof:
            if pos >= n:
                raise DataFormatError(f"{source}: truncated gzip data (stream ends early); re-download the file")
            buf = view[pos:pos + step]
            pos += len(buf)
            step = min(step * 2, 1 << 20)
            while True:
                try:
                    piece = d.decompress(buf, limit - len(out) + 1)
                except zlib.error as err:
                    raise DataFormatError(f"{source}: corrupt gzip data ({one_line(err)}); re-download the file") from None
                out += piece
                if expect is not None and declared is None:
                    declared = expect(out)
                    if declared is not None:
                        if declared > limit:
                            raise DataFormatError(f"{source}: declares {declared} bytes, more than the ceiling of "
                                                  f"{limit}; not a dataset file")
                        limit = declared
                if len(out) > limit:
                    if declared is not None:
                        raise DataFormatError(f"{source}: inflates to more than the {limit} bytes its header "
                                              "declares; not a dataset file")
                    raise DataFormatError(f"{source}: inflates to more than {limit} bytes; not a dataset file")
                buf = d.unconsumed_tail
                if d.eof or not buf:
                    break
        pos -= len(d.unused_data)
        members += 1
    return out  # the bytearray itself: a bytes() copy would double the peak memory of a large file


def _idx_declared(head, source: str, magic: int, ceiling: int = MAX_IDX_BYTES) -> int | None:
    """The total size (header + data) that IDX bytes starting with ``head`` declare, or None
    while ``head`` is too short to tell.  A wrong magic, an empty image size or a size above
    ``ceiling`` raise at once, before the data is read or inflated."""
    if len(head) < 4:
        return None
    found = int.from_bytes(bytes(head[:4]), "big")
    if found != magic:
        raise DataFormatError(f"{source}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x} "
                              f"({'images' if magic == IDX_IMAGES_MAGIC else 'labels'})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(head) < header:
        return None
    dims = tuple(int.from_bytes(bytes(head[4 + 4 * i: 8 + 4 * i]), "big") for i in range(ndim))
    if ndim == 3 and (dims[1] == 0 or dims[2] == 0):
        raise DataFormatError(f"{source}: IDX image size {dims[1]}x{dims[2]} is empty")
    total = header + int(np.prod(dims, dtype=object))  # Python ints: no overflow on hostile dims
    # A zero dimension makes the product 0, but numpy still refuses a shape whose other
    # dimensions overflow: bound those too.
    nonzero = int(np.prod([d for d in dims if d], dtype=object))
    if total > ceiling or nonzero > ceiling:
        size = f"= {total - header} bytes" if total > ceiling else "(dimensions)"
        raise DataFormatError(f"{source}: IDX header declares {' x '.join(map(str, dims))} {size}, "
                              f"more than any IDX dataset file ({ceiling} bytes); not a dataset file")
    return total


def _maybe_gunzip(data: bytes, source: str, magic: int | None = None) -> bytes:
    # The gzip magic is 1f 8b; an IDX file always starts with two zero bytes, so the two
    # cannot be confused and the file name's suffix need not be trusted.
    if data[:2] == b"\x1f\x8b":
        if magic is None:
            return gunzip(data, source)
        # What the header declares must fit the ceiling and what this much gzip can hold.
        ceiling = min(MAX_IDX_BYTES, len(data) * GZIP_MAX_RATIO + 1024)
        return gunzip(data, source, limit=ceiling, expect=lambda out: _idx_declared(out, source, magic, ceiling))
    return data


def parse_idx(data: bytes, source: str, magic: int) -> np.ndarray:
    """Parse IDX bytes (raw or gzipped) whose magic must equal ``magic``; returns a uint8 array.

    Raises DataFormatError on a wrong magic, a truncated header, a declared size above the
    format's ceiling, or a data section whose length differs from the product of the
    header's dimensions.
    """
    data = bytes(data)
    if len(data) > MAX_IDX_BYTES + 1024 and data[:2] != b"\x1f\x8b":
        raise DataFormatError(f"{source}: {len(data)} bytes, more than any IDX dataset file; not a dataset file")
    data = _maybe_gunzip(data, source, magic)
    if len(data) < 4:
        raise DataFormatError(f"{source}: {len(data)} bytes is too short for an IDX header")
    expected = _idx_declared(data, source, magic)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if expected is None:
        raise DataFormatError(f"{source}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != expected:
        raise DataFormatError(f"{source}: IDX header says {' x '.join(map(str, dims))} = {expected - header} bytes "
                              f"but the file holds {len(data) - header}; the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path, magic: int) -> np.ndarray:
    """An IDX file (raw or gzipped) from disk.  A raw file's header is checked against the
    ceiling and the file's size before the file is read, so a sparse multi-GB file costs
    nothing; a gzipped one is inflated under the budgets of :func:`gunzip`."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
    except OSError as err:
        from reslab.errors import ReslabError

        raise ReslabError(f"{path}: cannot read ({err.strerror or err})") from None
    if head[:2] != b"\x1f\x8b":
        declared = _idx_declared(head, source, magic)
        if declared is not None and declared != size:
            raise DataFormatError(f"{source}: IDX header declares {declared} bytes but the file holds {size}; "
                                  "the file is truncated or corrupt")
    # Raw or gzipped (never much larger than what it inflates to), the file fits the ceiling.
    return parse_idx(read_file(path, MAX_IDX_BYTES, "IDX dataset file"), source, magic)


def parse_idx_images(data: bytes, source: str) -> np.ndarray:
    """IDX image file -> uint8 array (N, 1, H, W)."""
    return parse_idx(data, source, IDX_IMAGES_MAGIC)[:, None]


def parse_idx_labels(data: bytes, source: str) -> np.ndarray:
    """IDX label file -> int64 array (N,)."""
    return parse_idx(data, source, IDX_LABELS_MAGIC).astype(np.int64)


def read_idx_images(path) -> np.ndarray:
    """:func:`parse_idx_images` of a file, under :func:`read_idx`'s budgets."""
    return read_idx(path, IDX_IMAGES_MAGIC)[:, None]


def read_idx_labels(path) -> np.ndarray:
    return read_idx(path, IDX_LABELS_MAGIC).astype(np.int64)


def check_pair(images: np.ndarray, labels: np.ndarray, num_classes: int, source: str) -> None:
    """The checks that need both files: equal counts and labels in ``[0, num_classes)``."""
    if len(images) != len(labels):
        raise DataFormatError(f"{source}: {len(images)} images but {len(labels)} labels; "
                              "the image and label files must come from the same split")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.max() if labels.max() >= num_classes else labels.min())
        raise DataFormatError(f"{source}: label {bad} out of range, valid labels are 0..{num_classes - 1}")
