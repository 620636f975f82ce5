"""Paper-faithful ResNets, their plain twins, and the scalar nets of Balduzzi et al."""

from reslab.models.init import INIT_SCHEMES, init_weights
from reslab.models.registry import MODELS, build_model, create_model, list_models, model_family, spec
from reslab.models.resnet import ResNet, cifar_resnet, imagenet_resnet, weighted_layers
from reslab.models.spec import ModelSpec

__all__ = ["INIT_SCHEMES", "MODELS", "ModelSpec", "ResNet", "build_model", "cifar_resnet", "create_model",
           "imagenet_resnet", "init_weights", "list_models", "model_family", "spec", "weighted_layers"]
