"""One way to write a file atomically, and the sweep of what a killed writer left.

The bytes go to a temporary file beside the target (``.NAME.tmpPID``), are flushed and
fsynced, and the temporary file is renamed over the target with ``os.replace``: a reader, a
crash or a ``kill -9`` at any moment sees the old file or the new one, never half of one.
On any failure (an exception, Ctrl-C) the temporary file is removed and the target is
left as it was; a failure to write (read-only folder, disk full, no permission) is an
:class:`~reslab.errors.OutputError` naming the folder.  Only ``kill -9`` (or a crash) can
leave a temporary file behind: :func:`sweep_temporaries` removes those of dead processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from reslab.errors import OutputError, ReslabError

_TEMP = re.compile(r"\.(.+)\.tmp([0-9]{1,7})")
_PID_MAX = 1 << 22  # Linux's PID_MAX_LIMIT: a larger number was not written by temp_name


def temp_name(path: str | Path) -> Path:
    """The temporary file used for ``path``: hidden, beside it, unique per process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_error(err: OSError, path: Path) -> OutputError:
    """``err`` (raised while writing ``path``) as one line naming the folder and the problem."""
    why = err.strerror or " ".join(str(err).split()) or type(err).__name__
    return OutputError(f"{path.parent}: cannot write {path.name} ({why}); the previous {path.name}, "
                       "if any, is unchanged", err.errno)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to fill; on a normal exit it replaces ``path`` (fsynced first),
    on an exception it is removed.  For writers that need a file name, not a file object.
    An OSError while writing becomes an :class:`OutputError` naming the folder."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if isinstance(err, ReslabError):
            raise
        raise write_error(err, path) from None
    finally:
        # On a read-only file system unlink fails (EROFS) even for a file that was never
        # made; raised here it would replace the error that says what went wrong.
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def atomic_write(path: str | Path, data: str | bytes | Callable[[IO[bytes]], object]) -> Path:
    """Write ``data`` to ``path`` atomically (creating its directory): text (UTF-8), bytes,
    or a function that writes into the open binary file, e.g. ``lambda f: torch.save(obj, f)``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(err, path) from None
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def sweep_temporaries(folder: str | Path) -> list[Path]:
    """Remove the ``.NAME.tmpPID`` files in ``folder`` whose writer (PID) is no longer alive
    (a ``kill -9`` during :func:`atomic_write`); returns what was removed.  A live PID's file
    may still be being written, so it stays, as does anything not named like
    :func:`temp_name` (a PID reused since is only a file kept longer, never one lost)."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if m is None or not 0 < int(m.group(2)) <= _PID_MAX or _pid_alive(int(m.group(2))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # a read-only run directory: the leftover stays, nothing else is affected
    return removed
