"""Training: config and recipes, the loop, checkpoints, distributed, evaluation.

``reslab.evaluate`` (scoring a saved run) is :func:`reslab.training.eval_run.evaluate`; it is not
bound here, where ``evaluate`` is the submodule :mod:`reslab.training.evaluate`.
"""

from reslab.training.config import TrainConfig, recipe, resolve
from reslab.training.loop import TrainingDiverged, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "recipe", "resolve", "train"]
