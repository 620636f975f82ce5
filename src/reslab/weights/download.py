"""Download pinned weight files into the user cache, checked before they are kept.

Same discipline as the dataset store (:mod:`reslab.data.store`, whose ``fetch`` and
``cache_root`` this uses): each file lands under a temporary ``.part`` name and is renamed
into place only after its SHA-256 matches the pinned one; a mismatching or broken
download is deleted and raises.  ``$RESLAB_WEIGHTS_MIRROR`` (a folder URL, ``file://``
works, or a plain folder path) stands in for the publishers' addresses.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import time
import urllib.error
from pathlib import Path

from reslab.data import store
from reslab.errors import ReslabError
from reslab.weights.sources import PinnedFile, Source, get_pinned


def weights_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/reslab/weights`` (default ``~/.cache/reslab/weights``)."""
    return store.cache_root() / "weights"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_matches(digest: str, pinned: str) -> bool:
    """A full pinned SHA-256 must be equal; an 8-digit pinned prefix must begin the digest."""
    pinned = pinned.lower()
    return digest == pinned if len(pinned) == 64 else digest.startswith(pinned)


def _describe(pf: PinnedFile) -> str:
    return f"SHA-256 {pf.sha256}" if pf.full_hash else f"SHA-256 prefix {pf.sha256} (from the file name)"


def verify_file(path: str | Path, pf: PinnedFile) -> str:
    """The file's SHA-256; ReslabError if it does not match ``pf``."""
    path = Path(path)
    if not path.is_file():
        raise ReslabError(f"{path}: no such file")
    got = sha256_file(path)
    if not hash_matches(got, pf.sha256):
        raise ReslabError(f"{path}: SHA-256 {got} does not match the pinned {_describe(pf)} of {pf.filename}")
    return got


def cached_path(src: Source, pf: PinnedFile) -> Path:
    return weights_cache_dir() / src.name / pf.filename


def converted_path(source: str, model: str) -> Path:
    """The canonical cached weights of ``source``/``model``: reslab safetensors."""
    return weights_cache_dir() / source / f"{model}.safetensors"


def is_cached(src: Source, pf: PinnedFile) -> bool:
    """Whether ``pretrained=`` finds these weights without a download."""
    return converted_path(src.name, pf.model).is_file() or cached_path(src, pf).is_file()


def fetch_pinned(source: str, model: str, *, base_url: str | None = None, log=None,
                 max_bytes: int | None = None, deadline_s: float = store.DOWNLOAD_DEADLINE_S,
                 timeout: float = store.DOWNLOAD_TIMEOUT_S) -> Path:
    """The verified original file for ``source``/``model``, downloaded if not cached.

    Bounded like the dataset downloads (:func:`reslab.data.store.fetch`): at most
    ``max_bytes`` (default: the pinned file's size with a margin), ``deadline_s`` seconds in
    all, ``timeout`` seconds for any one network wait (a stalled server).  ``.part`` files
    left by killed earlier downloads are removed first."""
    src, pf = get_pinned(source, model)
    final = cached_path(src, pf)
    if final.is_file() and hash_matches(sha256_file(final), pf.sha256):
        return final
    url = mirror_url(pf, base_url)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReslabError(f"cannot create the weights cache {final.parent}: {err.strerror or err}") from None
    store.sweep_partial_downloads(final.parent)
    tmp = final.with_name(f".{pf.filename}.{os.getpid()}.part")
    if log:
        log(f"downloading {url} -> {final}")
    try:
        try:
            store.fetch(url, tmp, timeout, max_bytes=pf.max_bytes if max_bytes is None else max_bytes,
                        deadline=time.monotonic() + deadline_s)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise ReslabError(f"{url}: download failed ({reason}); fetch it by hand and run "
                              f"`reslab weights import {src.name} {model} --file PATH`") from None
        got = sha256_file(tmp)
        if not hash_matches(got, pf.sha256):
            raise ReslabError(f"{url}: downloaded file has SHA-256 {got}, expected {_describe(pf)}; deleted it "
                              f"(broken download or a changed file)")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def mirror_url(pf: PinnedFile, base_url: str | None = None) -> str:
    """Where to fetch ``pf``: ``base_url`` or ``$RESLAB_WEIGHTS_MIRROR`` (a URL, or a plain
    folder path) in place of the publisher's folder."""
    base = base_url or os.environ.get("RESLAB_WEIGHTS_MIRROR")
    if not base:
        return pf.url
    if "://" not in base:  # a plain folder: as a file:// URL
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/") + "/" + pf.filename


def cache_copy(path: str | Path, source: str, model: str) -> Path:
    """Verify a hand-fetched copy of ``source``/``model`` and keep it in the cache (atomic),
    where :func:`fetch_pinned` and ``create_model(pretrained=...)`` find it."""
    src, pf = get_pinned(source, model)
    verify_file(path, pf)
    final = cached_path(src, pf)
    if Path(path).resolve() == final.resolve():
        return final
    tmp = final.with_name(f".{pf.filename}.{os.getpid()}.part")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        store.sweep_partial_downloads(final.parent)
        shutil.copyfile(path, tmp)
        os.replace(tmp, final)
    except OSError as err:
        raise ReslabError(f"cannot copy {path} into the weights cache {final.parent}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final
