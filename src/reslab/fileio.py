"""One way to write a file atomically.

The bytes go to a temporary file beside the target (``.NAME.tmpPID``), are flushed and
fsynced, and the temporary file is renamed over the target with ``os.replace``: a reader, a
crash or a ``kill -9`` at any moment sees the old file or the new one, never half of one.
On any failure (an exception, Ctrl-C) the temporary file is removed and the target is
left as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def temp_name(path: str | Path) -> Path:
    """The temporary file used for ``path``: hidden, beside it, unique per process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to fill; on a normal exit it replaces ``path`` (fsynced first),
    on an exception it is removed.  For writers that need a file name, not a file object."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes | Callable[[IO[bytes]], object]) -> Path:
    """Write ``data`` to ``path`` atomically (creating its directory): text (UTF-8), bytes,
    or a function that writes into the open binary file, e.g. ``lambda f: torch.save(obj, f)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path
