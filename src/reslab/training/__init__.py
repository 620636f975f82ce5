"""Training: config and recipes, the loop, checkpoints, distributed, evaluation."""

from reslab.training.config import TrainConfig, recipe, resolve
from reslab.training.eval_run import evaluate
from reslab.training.loop import TrainingDiverged, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "evaluate", "recipe", "resolve", "train"]
