"""``reslab exploding``: layer-wise gradient growth from weights with gain > 1, the raw-pixel
overflow, and BatchNorm + ReLU on each, as separate parts; writes OUT/exploding/results.json
and three PNGs."""

from reslab.commands._experiment import add_experiment_command


def add_parser(sub) -> None:
    add_experiment_command(
        sub, "exploding",
        help="exploding gradients: layer-wise growth with gain > 1, raw-pixel overflow, BN + ReLU",
        description="Deep plain ReLU nets on flattened Fashion-MNIST: the backpropagated gradient per layer "
                    "at step 0 with weights x gain > 1 (without and with BN), and SGD runs on raw 0-255 or "
                    "normalised inputs, with or without BN, catching the step, pass and layer where values "
                    "turn non-finite.  Quick scale: about 20 s on one CPU thread.")
