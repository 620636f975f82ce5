"""Paper-faithful ResNets, their plain twins, and the scalar nets of Balduzzi et al."""

from reslab.models.init import INIT_SCHEMES, init_weights
from reslab.models.registry import MODELS, create_model, list_models, model_family
from reslab.models.resnet import ResNet, cifar_resnet, imagenet_resnet, weighted_layers

__all__ = ["INIT_SCHEMES", "MODELS", "ResNet", "cifar_resnet", "create_model", "imagenet_resnet",
           "init_weights", "list_models", "model_family", "weighted_layers"]
