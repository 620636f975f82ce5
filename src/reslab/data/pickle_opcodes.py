"""The first gate of :mod:`reslab.data.safepickle`: a pickle's opcodes walked (nothing is
built) and refused unless they are the few a CIFAR batch uses, with memo indices, frames and
the stream's end checked, in time linear in the file size."""

from __future__ import annotations

import pickletools

from reslab.errors import DataFormatError, one_line

# The opcodes that CIFAR batches and their Python-3 re-saves (protocols 0-5) use.  Not
# here: object creation (INST, OBJ, NEWOBJ*), extension registry (EXT*), persistent ids,
# out-of-band buffers, sets, stack juggling (POP, DUP), and LONG4 (huge integers).
_ALLOWED_OPS = frozenset("""
PROTO FRAME STOP MARK
EMPTY_DICT DICT SETITEM SETITEMS EMPTY_LIST LIST APPEND APPENDS
EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 FLOAT BINFLOAT
STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8
BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
GLOBAL STACK_GLOBAL REDUCE BUILD
PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET
""".split())
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
# A memo entry may be fetched again (GET) only if it is an atom: a string, a number or a
# global.  Fetching a list, dict, tuple or array again is how a small pickle builds a DAG
# that is exponentially large once walked (and no CIFAR batch does it).
_ATOM_OPS = frozenset("""
GLOBAL STACK_GLOBAL STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8
BINBYTES SHORT_BINBYTES BINBYTES8 NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 FLOAT BINFLOAT
""".split())


def check_pickle_ops(data: bytes, source: str) -> None:
    """Walk the opcodes (pickletools, nothing is built) before unpickling: only
    :data:`_ALLOWED_OPS`; memo indices bounded by the number of opcodes so far and fetched
    only for atoms; frames and strings no longer than the bytes left; nothing after STOP.
    Linear in the file size."""
    memo: dict[int, bool] = {}  # index -> is an atom
    count, prev, stop_at = 0, None, None
    try:
        for op, arg, pos in pickletools.genops(data):
            count += 1
            name = op.name
            if name not in _ALLOWED_OPS:
                raise DataFormatError(f"{source}: pickle opcode {name} at byte {pos}, which a CIFAR batch never "
                                      "uses; refusing to load it")
            if name in _PUT_OPS:
                index = len(memo) if name == "MEMOIZE" else arg
                if not isinstance(index, int) or not 0 <= index <= count:
                    raise DataFormatError(f"{source}: pickle memo index {index} at byte {pos} is out of range")
                memo[index] = prev in _ATOM_OPS
                continue
            if name in _GET_OPS:
                if arg not in memo:
                    raise DataFormatError(f"{source}: pickle fetches memo entry {arg} that was never stored")
                if not memo[arg]:
                    raise DataFormatError(f"{source}: pickle re-uses a container (memo entry {arg}) at byte {pos}, "
                                          "which a CIFAR batch never does; refusing to load it")
            if name == "FRAME" and arg > len(data) - pos:
                raise DataFormatError(f"{source}: pickle frame of {arg} bytes at byte {pos} runs past the end")
            if name == "STOP":
                stop_at = pos + 1
            prev = name
    except DataFormatError:
        raise
    except Exception as err:  # noqa: BLE001 - genops raises ValueError and friends on malformed input
        raise DataFormatError(f"{source}: not a valid CIFAR pickle ({type(err).__name__}: {one_line(err)})") from None
    if stop_at is None:
        raise DataFormatError(f"{source}: not a valid CIFAR pickle (no STOP opcode)")
    if stop_at != len(data):
        raise DataFormatError(f"{source}: {len(data) - stop_at} bytes after the pickle's end; the file is corrupt")
