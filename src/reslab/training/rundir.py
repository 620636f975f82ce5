"""A run directory belongs to one run.

:func:`claim` is called before any data or model is built.  It checks that ``--out`` can be
a directory we write into, takes an exclusive ``fcntl.flock`` on ``RUN_DIR/.reslab.lock``
for the run's lifetime (the kernel drops it when the process dies, so a ``kill -9`` never
leaves a lock that blocks the next attempt), and decides whether the directory may be used:

* a missing or empty directory: a fresh run;
* a directory holding a run (``config.json``, ``metrics.jsonl``, ``model.safetensors`` or
  ``checkpoints/``): only with ``resume`` (continue it) or ``overwrite`` (start over; the old
  run's files are removed only once the new run's data and model are built);
* any other non-empty directory: refused, whatever the flags (never delete files reslab
  did not write).

Under DDP only rank 0 calls this; the other ranks write nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

from reslab.errors import ReslabError
from reslab.fileio import sweep_temporaries
from reslab.training.runpaths import RunPaths

LOCK_FILE = RunPaths.LOCK
# What makes a directory a (finished or partial) reslab run.
RUN_MARKERS = (RunPaths.CONFIG, RunPaths.METRICS, RunPaths.WEIGHTS, RunPaths.CHECKPOINTS)
# Everything a run (and `reslab eval` on it) writes; --overwrite removes only these.
_RUN_OUTPUTS = RUN_MARKERS + (RunPaths.TB,)
_RUN_OUTPUT_PREFIXES = (RunPaths.EVAL_PREFIX, RunPaths.CONFUSION_PREFIX,
                        *(f".{n}.tmp" for n in (RunPaths.METRICS, RunPaths.WEIGHTS, RunPaths.CONFIG)))


def _is_run_output(name: str) -> bool:
    return name in _RUN_OUTPUTS or name.startswith(_RUN_OUTPUT_PREFIXES)


def check_writable(run_dir: Path) -> None:
    """``run_dir`` is (or can be created as) a directory we can write into; one line otherwise."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ReslabError(f"--out {run_dir}: is an existing file, not a directory")
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ReslabError(f"--out {run_dir}: {probe} is a file, so no directory can be made there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ReslabError(f"--out {run_dir}: {probe} is not writable")


class RunDir:
    """The claim on one run directory: the open, locked lock file and what to undo on failure."""

    def __init__(self, path: Path, fd: int, created: list[Path], stale: list[str], made_lock: bool):
        self.path, self._fd, self._created, self._stale = path, fd, created, stale
        self._made_lock = made_lock
        self.started = False

    def start(self) -> None:
        """The run is about to write: remove the files of the run being overwritten (if any)."""
        for name in self._stale:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        self._stale = []
        self.started = True

    def release(self) -> None:
        """Drop the lock.  A run that never started leaves nothing behind: the lock file (if
        this claim made it) and the directories this claim created are removed again."""
        if self._fd < 0:
            return
        lock = self.path / LOCK_FILE
        try:
            if not self.started and self._made_lock:
                lock.unlink(missing_ok=True)  # still locked: a waiting claimer re-checks the inode
                for d in self._created:  # innermost first; only if empty
                    try:
                        d.rmdir()
                    except OSError:
                        break
        finally:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


def _lock_holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _acquire(run_dir: Path) -> int:
    lock = run_dir / LOCK_FILE
    for _ in range(10):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise ReslabError(f"--out {run_dir}: cannot create {LOCK_FILE} ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ReslabError(f"--out {run_dir}: another reslab run{_lock_holder(lock)} is using this directory; "
                                  "wait for it to finish or choose another --out") from None
            raise ReslabError(f"--out {run_dir}: cannot lock {LOCK_FILE} ({err.strerror or err})") from None
        # The previous holder may have removed the file between our open and our flock:
        # then we hold a lock on a file nobody else can see.  Retry on the current file.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    raise ReslabError(f"--out {run_dir}: could not lock {LOCK_FILE}; another process keeps replacing it")


def claim(run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunDir:
    """Check, create and lock ``run_dir`` for one run (see the module docstring)."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ReslabError("--resume continues a run, --overwrite starts it over; choose one")
    check_writable(run_dir)
    created: list[Path] = []
    probe = run_dir
    while not probe.exists() and probe.parent != probe:
        created.append(probe)
        probe = probe.parent
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReslabError(f"--out {run_dir}: cannot create the directory ({err.strerror or err})") from None
    made_lock = not (run_dir / LOCK_FILE).exists()
    claimed = RunDir(run_dir, _acquire(run_dir), created, [], made_lock)
    try:
        entries = sorted(e for e in os.listdir(run_dir) if e != LOCK_FILE)
        markers = [e for e in entries if e in RUN_MARKERS]
        stale: list[str] = []
        if resume:
            from reslab.training.resume import require_checkpoint

            require_checkpoint(run_dir)
        elif entries and not markers:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ReslabError(f"--out {run_dir}: not empty ({shown}) and not a reslab run directory; "
                              "choose an empty or new directory")
        elif markers and not overwrite:
            what = "a finished run" if RunPaths.WEIGHTS in markers else "a partial run"
            raise ReslabError(f"--out {run_dir}: already holds {what} ({', '.join(markers)}); continue it with "
                              f"--resume {run_dir}, start it over with --overwrite, or choose another --out")
        elif markers:
            stale = [e for e in entries if _is_run_output(e)]
    except BaseException:
        claimed.release()
        raise
    claimed._stale = stale
    if resume:  # what a kill -9 during an atomic write left (e.g. checkpoints/.latest.pt.tmpPID)
        for folder in (run_dir, RunPaths(run_dir).checkpoints):
            sweep_temporaries(folder)
    return claimed
