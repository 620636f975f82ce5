"""Where training numbers go: ``metrics.jsonl`` (always), and the sinks of
:mod:`reslab.training.loggers` (TensorBoard, W&B when installed; a progress bar or log records)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.training.runpaths import RunPaths

METRICS_FILE = RunPaths.METRICS


# A metrics.jsonl of a 64,000-iteration run with per-module gradient norms is a few MB;
# anything this large is not one.
MAX_METRICS_BYTES = 1 << 28
_MAX_ITERATION = 2 ** 63


def _row(line: str, i: int, path: Path) -> dict[str, Any]:
    """One line as a metrics record (a JSON object whose ``iteration`` is an int >= 0), or
    ValueError saying what is wrong."""
    try:
        row = json.loads(line)
    except RecursionError:
        raise ValueError("nests too deeply") from None
    except ValueError as err:  # JSONDecodeError, or an integer of more than 4300 digits
        raise ValueError("is not valid JSON" + (f" ({err.msg})" if isinstance(err, json.JSONDecodeError) else "")) \
            from None
    if not isinstance(row, dict):
        raise ValueError(f"is a JSON {type(row).__name__}, not an object")
    it = row.get("iteration")
    if type(it) is not int or not 0 <= it < _MAX_ITERATION:
        shown = " ".join(repr(it).split())[:40]
        raise ValueError(f"has iteration {shown}; every line needs an integer iteration >= 0")
    return row


def _parse(lines: list[str], path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(_row(line, i, path))
        except ValueError as err:
            if i == len(lines) - 1 and "not valid JSON" in str(err):  # a line cut short by a kill: drop it
                break
            raise ReslabError(f"{path}: line {i + 1} {err}; the file is damaged or not a reslab metrics file") \
                from None
    return rows


def _read_lines(path: Path) -> list[str]:
    """The file's lines, refused in one line when too large or not UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_METRICS_BYTES + 1)
    except OSError as err:
        raise ReslabError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) > MAX_METRICS_BYTES:
        raise ReslabError(f"{path}: more than {MAX_METRICS_BYTES} bytes; not a reslab metrics file")
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ReslabError(f"{path}: line {line} is not UTF-8 text (byte 0x{data[err.start]:02x}); "
                          "the file is damaged or not a reslab metrics file") from None


def truncate_after(path: Path, iteration: int) -> None:
    """Drop lines logged after ``iteration`` (a resumed run logs them again), atomically."""
    if not path.is_file():
        return
    keep = [r for r in _parse(_read_lines(path), path) if r["iteration"] <= iteration]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in keep))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl`` (none if there is no such file); a damaged
    file is one line naming it and the first bad line."""
    path = Path(run_dir) / METRICS_FILE
    return _parse(_read_lines(path), path) if path.is_file() else []


class MetricsLogger:
    """Rank 0's writer: ``metrics.jsonl``, plus the sinks of :mod:`reslab.training.loggers`
    (terminal, TensorBoard, W&B).  Other ranks get ``enabled=False`` and write nothing."""

    def __init__(self, run_dir: Path, total: int, start: int, *, enabled: bool, quiet: bool, terminal: bool = True):
        from reslab.training.loggers import Terminal, open_sinks

        self.enabled, self.quiet = enabled, quiet
        self.path = run_dir / METRICS_FILE
        self._file = open(self.path, "a") if enabled else None
        self._sinks, self.outputs = ([], "") if not enabled else open_sinks(run_dir, start)
        # terminal=False: a bank's members, whose trainer prints one line for all of them
        self._terminal = Terminal(total, start, quiet) if enabled and terminal else None

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}  # dicts as given
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for sink in (*self._sinks, *([self._terminal] if self._terminal is not None else [])):
            sink.log(record)

    def step(self, n: int = 1) -> None:
        if self._terminal is not None:
            self._terminal.step(n)

    def message(self, text: str) -> None:
        if self.enabled:
            logging.getLogger("reslab.train").info(text)

    def close(self) -> None:
        for sink in (self._terminal, *self._sinks):
            if sink is not None:
                sink.close()
        if self._file is not None:
            self._file.close()
