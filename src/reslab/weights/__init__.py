"""Weights in and out: load a run or a file as a model, and import published CIFAR weights.

>>> import reslab
>>> loaded = reslab.load_model("runs/r56")             # a run dir, .pt, .safetensors, or SOURCE:MODEL
>>> model, config = loaded                            # model in eval mode; config: TrainConfig or None
>>> loaded.card.mean, loaded.card.std                  # the preprocessing the weights expect
>>> net = reslab.create_model("resnet56", pretrained="akamaster")   # downloads once, checks SHA-256

See :mod:`reslab.weights.sources` for the pinned files and their hashes, and
:mod:`reslab.weights.convert` for how each format maps onto reslab's modules.
"""

from reslab.weights.load import LoadedModel, import_weights, load_model, pretrained, save_converted
from reslab.weights.sources import SOURCES, ModelCard, sources_for

__all__ = ["LoadedModel", "ModelCard", "SOURCES", "import_weights", "load_model", "pretrained", "save_converted",
           "sources_for"]
