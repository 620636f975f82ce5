"""Where training numbers go: ``metrics.jsonl`` (always), TensorBoard (when installed),
and a progress bar or plain log lines on the terminal."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def truncate_after(path: Path, iteration: int) -> None:
    """Drop lines logged after ``iteration``: a resumed run logs them again."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("iteration", 0) <= iteration]
    path.write_text("".join(line + "\n" for line in keep))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


class MetricsLogger:
    """Rank 0's writer.  Other ranks get ``enabled=False`` and write nothing."""

    def __init__(self, run_dir: Path, total: int, start: int, *, enabled: bool, quiet: bool):
        self.enabled, self.quiet = enabled, quiet
        self.path = run_dir / METRICS_FILE
        self._file = open(self.path, "a") if enabled else None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional extra: reslab[tensorboard]

            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=start)
        except ImportError:
            pass
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, file=sys.stderr,
                             smoothing=0.1)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("iteration", "epoch"):
                    self._tb.add_scalar(k, v, record["iteration"])
        if self.quiet:
            parts = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
            print(f"{time.strftime('%H:%M:%S')} {parts}", file=sys.stderr, flush=True)
        elif self._bar is not None:
            short = {"loss": "train_loss", "err": "train_error", "val": "val_error", "img/s": "images_per_s"}
            self._bar.set_postfix({k: f"{record[v]:.3g}" for k, v in short.items() if v in record}, refresh=False)

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()
