"""A pickle reader for untrusted CIFAR batches: it never runs code and never blows up.

A CIFAR batch is a Python-2 pickle of a dict of numpy arrays, lists, ints and strings.  An
ordinary ``pickle.load`` of a hostile file can run any code (``__reduce__``), and even the
allowed opcodes can cost gigabytes (a huge memo index, a list DAG of shared references, a
1 TB byte-array length).  So the stream is checked opcode by opcode first
(:func:`reslab.data.pickle_opcodes.check_pickle_ops`), then loaded by :class:`RestrictedUnpickler`, which resolves only
the few numpy globals a CIFAR batch needs, each replaced by a checked constructor.  Any
failure is a :class:`~reslab.errors.DataFormatError` naming the file.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from reslab.data.pickle_opcodes import check_pickle_ops
from reslab.errors import DataFormatError, one_line


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

# Plain numeric element types (a CIFAR batch stores uint8 pixels and integer labels; other
# numeric types get past the unpickler only to be named by the structure check).  Never objects.
_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "b1", "f2", "f4", "f8"}
_MAX_NDIM = 4


def _text(x) -> str | None:
    if isinstance(x, bytes):  # Python-2 pickles loaded with encoding="bytes"
        try:
            return x.decode("ascii")
        except UnicodeDecodeError:
            return None
    return x if isinstance(x, str) else None


def _flag(x) -> bool:
    """A dtype flag as numpy pickled it: numpy 1.x wrote ``dtype('u1', 0, 1)`` with ints (the
    real CIFAR batches, 2009), later numpy writes bools.  Nothing else."""
    return type(x) in (bool, int) and x in (0, 1)


class _Dtype:
    """What pickle's ``numpy.dtype(spec, align, copy)`` + BUILD(state) makes: only plain
    numeric element types, and a state that can only say which byte order."""

    __slots__ = ("dtype",)

    def __init__(self, spec, align=False, copy=False):
        name = _text(spec)
        if name is None or name.lstrip("<>|=") not in _DTYPES or not _flag(align) or not _flag(copy):
            raise DataFormatError(f"pickle builds numpy dtype {str(name or spec)[:20]!r}; a CIFAR batch holds only "
                                  "numeric arrays")
        self.dtype = np.dtype(name)

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3
                and _text(state[1]) in ("|", "<", ">", "=") and state[2:5] == (None, None, None)
                and state[5:] == (-1, -1, 0)):
            raise DataFormatError("pickle gives a numpy dtype a state that a plain numeric type never has")
        order = _text(state[1])
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _as_dtype(d) -> np.dtype:
    if not isinstance(d, _Dtype):
        raise DataFormatError("pickle passes something other than a numpy dtype where an array needs one")
    return d.dtype


def _array_from(buf, dtype: np.dtype, shape, fortran: bool) -> np.ndarray:
    """An array of ``shape`` over exactly the bytes of ``buf``: sizes are checked first."""
    if not isinstance(buf, (bytes, bytearray)):
        raise DataFormatError(f"pickle gives an array {type(buf).__name__} data instead of bytes")
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_NDIM
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise DataFormatError("pickle gives an array a shape that is not a short tuple of sizes")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(buf):
        raise DataFormatError(f"pickle declares an array of {count * dtype.itemsize} bytes but gives {len(buf)}")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class _Array:
    """What pickle's ``numpy.core.multiarray._reconstruct(ndarray, shape, dtype)`` + BUILD
    makes.  numpy would allocate the requested ``shape`` before BUILD replaces it, so a
    hostile pickle could ask for terabytes; here nothing is allocated until BUILD gives the
    data, and then only an array exactly the size of the bytes it gave."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise DataFormatError("pickle gives a numpy array a state of another form")
        _, shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool):
            raise DataFormatError("pickle gives a numpy array a state of another form")
        self.array = _array_from(raw, _as_dtype(dtype), shape, fortran)


def _safe_reconstruct(subtype, shape, dtype):
    """``numpy.core.multiarray._reconstruct``: an empty :class:`_Array` that BUILD fills."""
    if subtype is not _NDARRAY:
        raise DataFormatError("pickle reconstructs something other than numpy.ndarray")
    # numpy always writes the placeholder typecode b"b" here (the real dtype comes with BUILD).
    if not (isinstance(dtype, _Dtype) or _text(dtype) == "b") or shape != (0,):
        raise DataFormatError("pickle reconstructs a numpy array in a way numpy itself never writes")
    return _Array()


def _safe_frombuffer(buf, dtype, shape, order):
    """``numpy.core.numeric._frombuffer`` (numpy's pickle protocol 5 path)."""
    if _text(order) not in ("C", "F"):
        raise DataFormatError("pickle gives an array an unknown memory order")
    out = _Array()
    out.array = _array_from(buf, _as_dtype(dtype), shape, _text(order) == "F")
    return out


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
_DTYPE = _Allowed(_Dtype, "numpy.dtype")

# Exactly the globals that CIFAR batches (written by Python 2 + numpy) and Python-3
# re-saves of them reference.  Each is a plain function or type behind _Allowed:
# nothing here can run a shell, import a module or open a file.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
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
        except (KeyError, TypeError):
            raise DataFormatError(f"{self.source}: pickle references {str(module)[:60]}.{str(name)[:60]}, which a "
                                  "CIFAR batch never does; refusing to load it (only numpy arrays are allowed)") from None

    def persistent_load(self, pid):  # noqa: D401 - pickle API
        raise DataFormatError(f"{self.source}: pickle uses persistent ids, which a CIFAR batch never does")


def safe_unpickle(data: bytes, source: str):
    """Unpickle untrusted bytes: opcodes checked first (:func:`check_pickle_ops`), then
    :class:`RestrictedUnpickler`; any failure -> DataFormatError.  Arrays come back as
    :class:`_Array` holders (``.array``); :func:`parse_cifar_batch` unwraps them."""
    try:
        check_pickle_ops(data, source)
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
        raise DataFormatError(f"{source}: not a valid CIFAR pickle ({type(err).__name__}: {one_line(err)})") from None


