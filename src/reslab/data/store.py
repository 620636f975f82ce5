"""Where dataset files live: the search order, checksummed downloads, verification, and
the cache of parsed arrays.

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
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reslab.data.formats import gunzip
from reslab.data.registry import SPLITS, DatasetInfo
from reslab.errors import DataFormatError, ReslabError

PARSED_CACHE_VERSION = 1
DOWNLOAD_TIMEOUT_S = 60


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


def locate(info: DatasetInfo, split: str, data_dir: str | os.PathLike | None = None) -> Location | None:
    """The first :class:`Location` in the search order holding all of ``split``, or None."""
    for origin, d in search_dirs(info, data_dir):
        if d.is_dir():
            found = _find_in(info, split, origin, d)
            if found is not None:
                return found
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


def fetch(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Copy ``url`` to ``dest`` with urllib (http, https and file:// URLs)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310
        shutil.copyfileobj(resp, out, 1 << 20)


def download(info: DatasetInfo, dest: Path | None = None, *, base_url: str | None = None,
             log=None) -> Path:
    """Download ``info``'s published files into ``dest`` (default: the user cache).

    ``base_url`` (default ``$RESLAB_DATA_MIRROR``, else the publisher) lets a local
    mirror or a ``file://`` folder stand in.  Each file lands under a temporary name and
    is renamed only after its MD5 matches the published one; a mismatching or broken
    download is deleted and raises.  Network failures raise ReslabError saying which
    files to put where.
    """
    if not info.downloads:
        raise ReslabError(f"dataset {info.name} is generated, there is nothing to download")
    dest = Path(dest) if dest is not None else dataset_cache_dir(info)
    base = base_url or os.environ.get("RESLAB_DATA_MIRROR") or info.base_url
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReslabError(f"cannot create download folder {dest}: {err.strerror or err}") from None
    for spec in info.downloads:
        final = dest / spec.name
        if final.is_file() and md5_file(final) == spec.md5:
            continue
        url = base.rstrip("/") + "/" + spec.name
        tmp = dest / f".{spec.name}.{os.getpid()}.part"
        if log:
            log(f"downloading {url} -> {final}")
        try:
            fetch(url, tmp)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            tmp.unlink(missing_ok=True)
            reason = getattr(err, "reason", None) or err
            raise ReslabError(not_found_message(info, reason=f"{url}: {reason}")) from None
        got = md5_file(tmp)
        if got != spec.md5:
            tmp.unlink(missing_ok=True)
            raise DataFormatError(f"{url}: downloaded file has MD5 {got}, expected {spec.md5}; deleted it "
                                  f"(broken download or a changed file; retry, or fetch it by hand from "
                                  f"{info.provider})")
        os.replace(tmp, final)
    return dest


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Check:
    """One file's verification result."""

    path: Path
    ok: bool
    detail: str


def _check_idx(info: DatasetInfo, path: Path) -> Check:
    base = path.name.removesuffix(".gz")
    spec = next(s for s in info.downloads if s.name == base + ".gz")
    if path.name.endswith(".gz"):
        got = md5_file(path)
        if got == spec.md5:
            return Check(path, True, f"MD5 {got} matches the published file")
        try:
            payload = gunzip(path.read_bytes(), str(path))
        except DataFormatError as err:
            return Check(path, False, str(err))
        what = "re-compressed copy, same content"
    else:
        payload, what = path.read_bytes(), "uncompressed copy"
    got = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    if got == spec.content_md5:
        return Check(path, True, f"{what}: content MD5 {got} matches the published data")
    return Check(path, False, f"content MD5 {got}, expected {spec.content_md5} (published archive MD5 {spec.md5})")


def verify(info: DatasetInfo, data_dir=None) -> list[Check]:
    """Check every file that :func:`locate` picks for each split against published checksums.

    Raises ReslabError when a split is not found (nothing is downloaded).
    """
    checks: dict[Path, Check] = {}
    for split in SPLITS:
        loc = locate(info, split, data_dir)
        if loc is None:
            raise ReslabError(not_found_message(info, data_dir))
        if loc.archive is not None:
            got = md5_file(loc.archive)
            exp = info.downloads[0].md5
            checks[loc.archive] = Check(loc.archive, got == exp, f"MD5 {got}" + (" matches" if got == exp
                                                                                 else f", expected {exp}"))
            continue
        for name, path in loc.paths.items():
            if path in checks:
                continue
            if info.format == "idx":
                checks[path] = _check_idx(info, path)
            else:
                got, exp = md5_file(path), info.member_md5[name]
                checks[path] = Check(path, got == exp, f"MD5 {got}" + (" matches" if got == exp else f", expected {exp}"))
    return list(checks.values())


# --------------------------------------------------------------------------- parsed cache


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
    """Best-effort atomic write (temp file + os.replace); stale caches of the split are removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.replace(tmp, path)
        split = path.name.split("-")[0]
        for old in path.parent.glob(f"{split}-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        # A read-only cache only costs re-parsing next time.
        tmp.unlink(missing_ok=True)
