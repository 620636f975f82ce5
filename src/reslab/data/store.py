"""Where dataset files live: the search order and checksummed downloads.  Verifying a
folder is :mod:`reslab.data.verify`; the cache of parsed arrays, :mod:`reslab.data.parsed_cache`.

Search order for a dataset NAME (the first folder holding every file of the split wins):

1. ``data_dir`` (``--data-dir``): ``D/NAME``, ``D/<alias>``, then ``D`` itself;
2. ``$RESLAB_DATA`` (``os.pathsep``-separated roots): ``R/NAME`` and ``R/<alias>``
   (plus ``R/cifar-10-batches-py`` etc. for CIFAR) -- a shared root holds several
   datasets whose IDX files have the same names, so IDX files at the top of it are
   not trusted to be NAME;
3. the system copy (``/usr/share/datasets/fashion-mnist`` from Debian's
   ``dataset-fashion-mnist``);
4. the user cache ``$XDG_CACHE_HOME/reslab/NAME`` (default ``~/.cache/reslab/NAME``);
5. a download from the publisher into (4), checked against the published MD5 first.

Splits are never mixed: the first folder holding *any* file of the dataset must hold the
requested split too, or the error names the missing files and the folder (the user cache
excepted, which the next download completes).  Downloads have an overall deadline, a size
cap (the published size) and leave no ``.part`` file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from reslab.data.registry import DatasetInfo
from reslab.errors import DataFormatError, ReslabError

DOWNLOAD_TIMEOUT_S = 60             # each network wait
DOWNLOAD_DEADLINE_S = 30 * 60       # a whole download (CIFAR is 170 MB: 30 min is 95 kB/s)
MAX_DOWNLOAD_BYTES = 1 << 30        # a file whose published size is not known


@dataclass(frozen=True)
class Location:
    """Where one split was found.  ``paths`` maps each name in ``info.split_files[split]``
    to its file; for a CIFAR archive they are members of ``archive`` instead."""

    origin: str  # "--data-dir", "$RESLAB_DATA", "system", "cache"
    directory: Path
    paths: dict[str, Path]
    archive: Path | None = None

    def files(self) -> list[Path]:
        return [self.archive] if self.archive is not None else list(self.paths.values())

    def describe(self) -> str:
        where = self.archive if self.archive is not None else self.directory
        return f"{where} ({self.origin})"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/reslab``, or ``~/.cache/reslab`` when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reslab"


def dataset_cache_dir(info: DatasetInfo) -> Path:
    return cache_root() / info.name


def search_dirs(info: DatasetInfo, data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The folders searched for ``info``'s files, in order, each with its origin label."""
    subdirs = (info.name, *info.aliases)
    dirs: list[tuple[str, Path]] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        dirs += [("--data-dir", root / s) for s in subdirs] + [("--data-dir", root)]
    for root in filter(None, os.environ.get("RESLAB_DATA", "").split(os.pathsep)):
        dirs += [("$RESLAB_DATA", Path(root).expanduser() / s) for s in subdirs]
        if info.format == "cifar":
            # cifar-10-batches-py/ and cifar-10-python.tar.gz name their dataset, so they
            # are safe to pick up at the top of a shared root (torchvision's layout).
            dirs.append(("$RESLAB_DATA", Path(root).expanduser()))
    dirs += [("system", Path(d)) for d in info.system_dirs]
    dirs.append(("cache", dataset_cache_dir(info)))
    return dirs


def _find_in(info: DatasetInfo, split: str, origin: str, d: Path) -> Location | None:
    names = info.split_files[split]
    if info.format == "idx":
        paths = {}
        for n in names:
            # A gzipped copy (as published) or one gunzipped by hand.
            hit = next((p for p in (d / f"{n}.gz", d / n) if p.is_file()), None)
            if hit is None:
                return None
            paths[n] = hit
        return Location(origin, d, paths)
    # CIFAR: the extracted folder (or its contents), else the archive as downloaded.
    for folder in (d / info.folder, d):
        if all((folder / n).is_file() for n in names):
            return Location(origin, folder, {n: folder / n for n in names})
    archive = d / info.downloads[0].name
    if archive.is_file():
        return Location(origin, d, {n: Path(info.folder) / n for n in names}, archive=archive)
    return None


def _present(info: DatasetInfo, d: Path) -> list[str]:
    """Files of ``info`` (of any split) that ``d`` holds: evidence that ``d`` is where the
    dataset lives.  CIFAR-100's generic member names (``train``, ``test``) count only inside
    its own folder."""
    every = [n for names in info.split_files.values() for n in names]
    if info.format == "idx":
        return [p.name for n in every for p in (d / f"{n}.gz", d / n) if p.is_file()]
    found = [f"{info.folder}/{n}" for n in every if (d / info.folder / n).is_file()]
    found += [n for n in every if n not in ("train", "test") and (d / n).is_file()]
    if info.downloads and (d / info.downloads[0].name).is_file():
        found.append(info.downloads[0].name)
    return found


def _missing(info: DatasetInfo, split: str, d: Path) -> list[str]:
    names = info.split_files[split]
    if info.format == "idx":
        return [f"{n}.gz" for n in names if not (d / f"{n}.gz").is_file() and not (d / n).is_file()]
    folder = d / info.folder if (d / info.folder).is_dir() else d
    prefix = f"{info.folder}/" if folder != d else ""
    return [prefix + n for n in names if not (folder / n).is_file()]


def locate(info: DatasetInfo, split: str, data_dir: str | os.PathLike | None = None) -> Location | None:
    """The first :class:`Location` in the search order holding all of ``split``, or None.

    Splits are never mixed from different places: the first folder that holds *any* file of
    the dataset is where every split must be, and a split missing there is an error naming
    the missing files (except in the user cache, which an interrupted download may have
    left part-filled and the next download completes)."""
    for origin, d in search_dirs(info, data_dir):
        if d.is_dir():
            found = _find_in(info, split, origin, d)
            if found is not None:
                return found
            present = _present(info, d)
            if present and origin != "cache":
                missing = _missing(info, split, d)
                raise ReslabError(
                    f"dataset {info.name}: {d} ({origin}) holds {present[0]}"
                    f"{f' and {len(present) - 1} other file(s)' if len(present) > 1 else ''} of it, but the "
                    f"{split} split's {', '.join(missing)} not found there; put the missing file(s) there "
                    f"(the splits of a dataset are never taken from different places)")
    return None


def not_found_message(info: DatasetInfo, data_dir=None, reason: str | None = None) -> str:
    """One line: which files to put where, and who provides them."""
    if info.format == "idx":
        files = ", ".join(s.name for s in info.downloads)
    else:
        files = f"{info.downloads[0].name} (or its extracted {info.folder}/ folder)"
    places = [f"{data_dir}" if data_dir is not None else "--data-dir DIR",
              f"$RESLAB_DATA/{info.name}", str(dataset_cache_dir(info))]
    why = f"; download failed: {reason}" if reason else ""
    return (f"dataset {info.name} not found{why}; put {files} in one of: {', '.join(places)} "
            f"(get them from {info.provider})")


# --------------------------------------------------------------------------- download


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DownloadLimit(OSError):
    """A download ran past its deadline or its size cap."""


def fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S, *, max_bytes: int | None = None,
          deadline: float | None = None) -> None:
    """Copy ``url`` to ``dest`` with urllib (http, https and file:// URLs).

    ``timeout`` bounds each network wait; ``deadline`` (a ``time.monotonic()`` value) the
    whole transfer, so a server that drips bytes cannot hold a run forever; ``max_bytes``
    the size: a declared or actual length above it stops the transfer at once.
    """
    if deadline is not None:  # no single wait may outlast the deadline either
        timeout = max(0.1, min(timeout, deadline - time.monotonic()))
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310
        declared = resp.headers.get("Content-Length") if getattr(resp, "headers", None) is not None else None
        if max_bytes is not None and declared is not None and declared.strip().isdigit() \
                and int(declared) > max_bytes:
            raise DownloadLimit(f"the server announces {int(declared)} bytes, the published file has {max_bytes}")
        read = getattr(resp, "read1", resp.read)  # read1: what has arrived, so the deadline is checked often
        total = 0
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise DownloadLimit(f"not finished within the download deadline ({total} bytes so far)")
            chunk = read(1 << 20)
            if not chunk:
                return
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise DownloadLimit(f"more than the {max_bytes} bytes of the published file")
            out.write(chunk)


_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.part$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_partial_downloads(dest: Path) -> list[Path]:
    """Remove ``.NAME.PID.part`` files whose process is gone (a download killed with -9
    cannot clean up after itself); returns what was removed."""
    removed = []
    try:
        entries = list(dest.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _PART.match(p.name)
        if m and int(m.group("pid")) != os.getpid() and not _pid_alive(int(m.group("pid"))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def download(info: DatasetInfo, dest: Path | None = None, *, base_url: str | None = None,
             log=None, deadline_s: float = DOWNLOAD_DEADLINE_S) -> Path:
    """Download ``info``'s published files into ``dest`` (default: the user cache).

    ``base_url`` (default ``$RESLAB_DATA_MIRROR``, else the publisher) lets a local
    mirror or a ``file://`` folder stand in.  Each file lands under a temporary name and
    is renamed only after its MD5 matches the published one; a mismatching or broken
    download is deleted and raises.  Network failures raise ReslabError saying which
    files to put where.  The whole download has a deadline of ``deadline_s`` seconds and
    each file a size cap (its published size); temporary ``.part`` files are removed on
    any exit, and those of killed earlier attempts at the next start.
    """
    if not info.downloads:
        raise ReslabError(f"dataset {info.name} is generated, there is nothing to download")
    dest = Path(dest) if dest is not None else dataset_cache_dir(info)
    base = base_url or os.environ.get("RESLAB_DATA_MIRROR") or info.base_url
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReslabError(f"cannot create download folder {dest}: {err.strerror or err}") from None
    sweep_partial_downloads(dest)
    deadline = time.monotonic() + deadline_s
    for spec in info.downloads:
        final = dest / spec.name
        if final.is_file() and md5_file(final) == spec.md5:
            continue
        url = base.rstrip("/") + "/" + spec.name
        tmp = dest / f".{spec.name}.{os.getpid()}.part"
        if log:
            log(f"downloading {url} -> {final}")
        try:
            try:
                fetch(url, tmp, max_bytes=spec.size if spec.size is not None else MAX_DOWNLOAD_BYTES,
                      deadline=deadline)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                reason = getattr(err, "reason", None) or err
                raise ReslabError(not_found_message(info, reason=f"{url}: {reason}")) from None
            got = md5_file(tmp)
            if got != spec.md5:
                raise DataFormatError(f"{url}: downloaded file has MD5 {got}, expected {spec.md5}; deleted it "
                                      f"(broken download or a changed file; retry, or fetch it by hand from "
                                      f"{info.provider})")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)  # any exit: error, Ctrl-C, SIGTERM turned into an exception
    return dest
