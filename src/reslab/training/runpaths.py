"""The layout of a run directory, named in one place.

``RunPaths(run_dir).config``, ``.metrics``, ``.latest`` ... are the files a training run and
``reslab eval`` write; the class attributes are their names.  A leaf module: every part of
training (and ``reslab plot``, ``reslab eval``) can import it without an import cycle.
"""

from __future__ import annotations

from pathlib import Path


class RunPaths:
    """Every path inside a run directory, named once: ``RunPaths(run_dir).config`` etc."""

    CONFIG = "config.json"           # the resolved TrainConfig
    METRICS = "metrics.jsonl"        # one JSON object per logged iteration
    WEIGHTS = "model.safetensors"    # the final weights, with the config as metadata
    CHECKPOINTS = "checkpoints"      # folder of LATEST and BEST
    LATEST = "latest.pt"             # everything resume needs
    BEST = "best.pt"                 # best by validation error
    TB = "tb"                        # TensorBoard events
    WANDB = "wandb"                  # Weights & Biases files
    LOCK = ".reslab.lock"            # flock'd while a trainer or `reslab eval` uses the folder
    EVAL_PREFIX = "eval_"            # `reslab eval`: eval_SPLIT.json
    CONFUSION_PREFIX = "confusion_"  # and confusion_SPLIT.png

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)

    config = property(lambda self: self.root / self.CONFIG)
    metrics = property(lambda self: self.root / self.METRICS)
    weights = property(lambda self: self.root / self.WEIGHTS)
    checkpoints = property(lambda self: self.root / self.CHECKPOINTS)
    latest = property(lambda self: self.root / self.CHECKPOINTS / self.LATEST)
    best = property(lambda self: self.root / self.CHECKPOINTS / self.BEST)
    tb = property(lambda self: self.root / self.TB)
    wandb = property(lambda self: self.root / self.WANDB)
    lock = property(lambda self: self.root / self.LOCK)

    def eval_json(self, split: str) -> Path:
        """What ``reslab eval`` writes for ``split``: its numbers ..."""
        return self.root / f"{self.EVAL_PREFIX}{split}.json"

    def confusion(self, split: str) -> Path:
        """... and its confusion matrix."""
        return self.root / f"{self.CONFUSION_PREFIX}{split}.png"
