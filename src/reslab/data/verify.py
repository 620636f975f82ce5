"""``reslab data verify``: every file :func:`reslab.data.store.locate` picks for a dataset,
checked against the publisher's checksums (an uncompressed or re-compressed IDX copy by the MD5
of its content)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from reslab.data.formats import MAX_IDX_BYTES, gunzip, read_file
from reslab.data.registry import SPLITS, DatasetInfo
from reslab.data.store import locate, md5_file, not_found_message
from reslab.errors import DataFormatError, ReslabError


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
            payload = gunzip(read_file(path, MAX_IDX_BYTES, "IDX dataset file"), str(path), limit=MAX_IDX_BYTES)
        except DataFormatError as err:
            return Check(path, False, str(err))
        what = "re-compressed copy, same content"
    else:
        try:
            payload = read_file(path, MAX_IDX_BYTES, "IDX dataset file")
        except DataFormatError as err:
            return Check(path, False, str(err))
        what = "uncompressed copy"
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
