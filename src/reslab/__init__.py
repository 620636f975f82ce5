"""reslab: residual networks, their plain twins, and the depth problems they solve.

>>> import reslab
>>> model = reslab.create_model("resnet56")            # He et al. §4.2, option A
>>> result = reslab.train({"model": "resnet20", "iterations": 100}, "runs/demo")
>>> reslab.evaluate("runs/demo", split="val")["error"]
>>> model, config = reslab.load_model("runs/demo")      # or a .pt, a .safetensors, "akamaster:resnet56"
"""

from reslab._version import __version__  # noqa: E402,F401

from reslab.errors import DataFormatError, ReslabError  # noqa: E402
from reslab.weights.builder import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "train", "evaluate", "TrainConfig",
           "load_model", "LoadedModel", "probe", "ReslabError", "DataFormatError"]


def __getattr__(name):  # training pulls in more; import it on first use
    if name in ("train", "TrainConfig"):
        from reslab import training

        return getattr(training, name)
    if name == "evaluate":
        from reslab.training.eval_run import evaluate

        return evaluate
    if name in ("load_model", "LoadedModel"):
        from reslab import weights

        return getattr(weights, name)
    if name == "probe":
        from reslab.probes.health import probe

        return probe
    raise AttributeError(f"module 'reslab' has no attribute {name!r}")


def __dir__():  # the lazy names above too, so dir(reslab) and tab completion show them
    return sorted(set(globals()) | set(__all__))
