"""Parsers for the two on-disk formats reslab reads: IDX (MNIST, Fashion-MNIST) and the
CIFAR-10/100 "python version" pickled batches.

Everything here is numpy-only and treats its input as untrusted bytes: any malformed
input raises :class:`~reslab.errors.DataFormatError` naming the file, never another
exception type, and unpickling can never execute code (see :class:`RestrictedUnpickler`).

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

import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from reslab.errors import DataFormatError

# Refuse to inflate anything larger than this: the biggest real file (Fashion-MNIST
# train images) is 47 MB raw, so 1 GiB only ever trips on a gzip bomb.
MAX_INFLATED_BYTES = 1 << 30
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
CIFAR_SHAPE = (3, 32, 32)


def _one_line(err: BaseException, limit: int = 160) -> str:
    """An exception's text squeezed onto one short line (the CLI prints errors as one line)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- IDX


def gunzip(data: bytes, source: str, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Inflate a (possibly multi-member) gzip stream, or raise DataFormatError naming ``source``.

    zlib is driven by hand, instead of ``gzip.decompress``, so that the output size is
    capped (a gzip bomb cannot exhaust memory) and every failure maps to one error type.
    """
    out = bytearray()
    rest = data
    while rest:
        # wbits=31: expect a gzip header and trailer (CRC32 + length are checked by zlib).
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(rest, limit - len(out) + 1)
        except zlib.error as err:
            raise DataFormatError(f"{source}: corrupt gzip data ({_one_line(err)}); re-download the file") from None
        out += chunk
        if len(out) > limit:
            raise DataFormatError(f"{source}: inflates to more than {limit} bytes; not a dataset file")
        if not d.eof:
            raise DataFormatError(f"{source}: truncated gzip data (stream ends early); re-download the file")
        rest = d.unused_data
        # Trailing zero padding after the last member is legal (gzip(1) ignores it).
        if rest and not rest.strip(b"\x00"):
            break
    return bytes(out)


def _maybe_gunzip(data: bytes, source: str) -> bytes:
    # The gzip magic is 1f 8b; an IDX file always starts with two zero bytes, so the two
    # cannot be confused and the file name's suffix need not be trusted.
    if data[:2] == b"\x1f\x8b":
        return gunzip(data, source)
    return data


def parse_idx(data: bytes, source: str, magic: int) -> np.ndarray:
    """Parse IDX bytes (raw or gzipped) whose magic must equal ``magic``; returns a uint8 array.

    Raises DataFormatError on a wrong magic, a truncated header, or a data section whose
    length differs from the product of the header's dimensions.
    """
    data = _maybe_gunzip(bytes(data), source)
    if len(data) < 4:
        raise DataFormatError(f"{source}: {len(data)} bytes is too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataFormatError(f"{source}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x} "
                              f"({'images' if magic == IDX_IMAGES_MAGIC else 'labels'})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(f"{source}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and (dims[1] == 0 or dims[2] == 0):
        raise DataFormatError(f"{source}: IDX image size {dims[1]}x{dims[2]} is empty")
    expected = int(np.prod(dims, dtype=object))  # Python ints: no overflow on hostile dims
    if len(data) - header != expected:
        raise DataFormatError(f"{source}: IDX header says {' x '.join(map(str, dims))} = {expected} bytes "
                              f"but the file holds {len(data) - header}; the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def parse_idx_images(data: bytes, source: str) -> np.ndarray:
    """IDX image file -> uint8 array (N, 1, H, W)."""
    return parse_idx(data, source, IDX_IMAGES_MAGIC)[:, None]


def parse_idx_labels(data: bytes, source: str) -> np.ndarray:
    """IDX label file -> int64 array (N,)."""
    return parse_idx(data, source, IDX_LABELS_MAGIC).astype(np.int64)


def check_pair(images: np.ndarray, labels: np.ndarray, num_classes: int, source: str) -> None:
    """The checks that need both files: equal counts and labels in ``[0, num_classes)``."""
    if len(images) != len(labels):
        raise DataFormatError(f"{source}: {len(images)} images but {len(labels)} labels; "
                              "the image and label files must come from the same split")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.max() if labels.max() >= num_classes else labels.min())
        raise DataFormatError(f"{source}: label {bad} out of range, valid labels are 0..{num_classes - 1}")


# --------------------------------------------------------------------------- pickle


class _Allowed:
    """A callable stand-in for an allow-listed global.

    Handing pickle the real function or type would let a hostile file mutate it (BUILD
    sets attributes on whatever object it is given) or call ``ndarray.__new__`` with a
    huge shape (NEWOBJ).  This wrapper is not a type, so NEWOBJ refuses it, and BUILD on
    it raises, so pickle can only *call* it.
    """

    __slots__ = ("_fn", "_name")

    def __init__(self, fn, name: str):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args):
        return self._fn(*args)

    def __setattr__(self, key, value):
        raise DataFormatError(f"pickle tries to modify {self._name}")

    def __setstate__(self, state):
        raise DataFormatError(f"pickle tries to modify {self._name}")

    def __repr__(self) -> str:
        return f"<allowed {self._name}>"


def _refuse_ndarray_call(*args):
    raise DataFormatError("pickle calls numpy.ndarray directly, which a CIFAR batch never does")


_NDARRAY = _Allowed(_refuse_ndarray_call, "numpy.ndarray")


def _safe_reconstruct(subtype, shape, dtype):
    """``numpy.core.multiarray._reconstruct`` that ignores the requested shape.

    numpy allocates ``shape`` before ``__setstate__`` replaces it, so a hostile pickle
    could ask for terabytes; the real files always pass ``(0,)``, which we force.
    """
    if subtype is not _NDARRAY:
        raise DataFormatError("pickle reconstructs something other than numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, (0,), np.dtype(dtype))


def _safe_frombuffer(buf, dtype, shape, order):
    """``numpy.core.numeric._frombuffer`` (numpy's pickle protocol 5 path), object dtype refused."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise DataFormatError("pickle builds an object array")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` limited to latin-1, the only codec pickle itself emits.

    Other codec names would make ``codecs`` look up (import) codec modules by name.
    """
    if encoding not in ("latin1", "latin-1") or errors != "strict" or not isinstance(text, str):
        raise DataFormatError(f"pickle calls _codecs.encode with {encoding!r}; only latin1 is allowed")
    return text.encode("latin-1")


def _empty_bytes(*args):
    """``bytes()``: how Python 3 pickles ``b""`` at protocol <= 2; any argument is refused."""
    if args:
        raise DataFormatError("pickle calls bytes() with arguments")
    return b""


_RECONSTRUCT = _Allowed(_safe_reconstruct, "numpy _reconstruct")
_FROMBUFFER = _Allowed(_safe_frombuffer, "numpy _frombuffer")

# Exactly the globals that CIFAR batches (written by Python 2 + numpy) and Python-3
# re-saves of them reference.  Each is a plain function or type behind _Allowed:
# nothing here can run a shell, import a module or open a file.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Allowed(np.dtype, "numpy.dtype"),
    # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(str, "latin1") and b""
    # as bytes(); both are pure once restricted as above.
    ("_codecs", "encode"): _Allowed(_latin1_encode, "_codecs.encode"),
    ("__builtin__", "bytes"): _Allowed(_empty_bytes, "bytes"),
    ("builtins", "bytes"): _Allowed(_empty_bytes, "bytes"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` only returns the allow-listed numpy helpers.

    ``pickle.load`` on an untrusted file can call any importable function (e.g.
    ``os.system`` via ``__reduce__``).  Refusing every other global makes that impossible.
    """

    def __init__(self, file, source: str):
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module, name):  # noqa: D401 - pickle API
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataFormatError(f"{self.source}: pickle references {module}.{name}, which a CIFAR batch "
                                  "never does; refusing to load it (only numpy arrays are allowed)") from None

    def persistent_load(self, pid):  # noqa: D401 - pickle API
        raise DataFormatError(f"{self.source}: pickle uses persistent ids, which a CIFAR batch never does")


def safe_unpickle(data: bytes, source: str):
    """Unpickle untrusted bytes with :class:`RestrictedUnpickler`; any failure -> DataFormatError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataFormatError as err:
        # _safe_reconstruct and friends do not know the file name; add it.
        msg = str(err)
        raise DataFormatError(msg if msg.startswith(source) else f"{source}: {msg}") from None
    except RecursionError:
        raise DataFormatError(f"{source}: pickle nests too deeply; not a CIFAR batch") from None
    except Exception as err:  # noqa: BLE001 - corrupt pickles raise a dozen different types
        # UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
        # UnicodeError, OverflowError, MemoryError...: all mean "this is not a valid file".
        raise DataFormatError(f"{source}: not a valid CIFAR pickle ({type(err).__name__}: {_one_line(err)})") from None


def _key(d: dict, name: str):
    # Python-2 pickles loaded with encoding="bytes" have bytes keys; re-saved ones have str.
    if name.encode() in d:
        return d[name.encode()]
    return d.get(name)


def parse_cifar_batch(data: bytes, source: str, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch -> (uint8 images (N, 3, 32, 32), int64 labels (N,)).

    ``label_key`` is ``"labels"`` for CIFAR-10 and ``"fine_labels"`` for CIFAR-100.
    """
    obj = safe_unpickle(data, source)
    if not isinstance(obj, dict):
        raise DataFormatError(f"{source}: CIFAR batch must be a dict, got {type(obj).__name__}")
    images, labels = _key(obj, "data"), _key(obj, label_key)
    missing = [k for k, v in (("data", images), (label_key, labels)) if v is None]
    if missing:
        raise DataFormatError(f"{source}: CIFAR batch lacks key(s) {', '.join(missing)}; "
                              f"expected 'data' and '{label_key}'")
    per_image = int(np.prod(CIFAR_SHAPE))
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != per_image:
        desc = f"{images.dtype} array {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise DataFormatError(f"{source}: 'data' must be a uint8 array of shape (N, {per_image}), got {desc}")
    try:
        labels = np.asarray(labels)
    except Exception:  # noqa: BLE001 - ragged/odd objects
        labels = np.asarray([None])
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataFormatError(f"{source}: '{label_key}' must be a list of integers, "
                              f"got {labels.dtype} with shape {labels.shape}")
    labels = labels.astype(np.int64)
    check_pair(images, labels, num_classes, source)
    return images.reshape((-1, *CIFAR_SHAPE)), labels


# --------------------------------------------------------------------------- tar


def read_tar_members(archive: Path, wanted: dict[str, str], max_member_bytes: int = 512 << 20) -> dict[str, bytes]:
    """Read regular-file members of a tar(.gz) into memory without extracting anything.

    ``wanted`` maps member path (e.g. ``cifar-10-batches-py/data_batch_1``) -> key; the
    result maps key -> bytes for the members that were found.  Only exact, relative,
    ``..``-free names of regular files are read, so links, devices and path-traversal
    entries are ignored rather than followed.
    """
    source = str(archive)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
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
        raise DataFormatError(f"{source}: not a readable tar.gz archive ({_one_line(err)}); re-download it") from None
    return found
