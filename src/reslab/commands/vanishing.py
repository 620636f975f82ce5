"""``reslab vanishing``: sigmoid vs tanh vs ReLU vs ReLU+BN, per-layer gradient norms at
init and after a few SGD steps; writes OUT/vanishing/results.json and three PNGs."""

from reslab.experiments import base


def add_parser(sub) -> None:
    base.add_experiment_command(
        sub, "vanishing",
        help="vanishing gradients: sigmoid's 0.25 derivative vs ReLU(+BN), per-layer gradient norms",
        description="Per-layer gradient norms of deep plain fully connected nets (sigmoid, tanh, ReLU, "
                    "ReLU+BN) on flattened Fashion-MNIST, at init and after a few SGD steps, with the "
                    "sigmoid's derivative bound 0.25^L.  Quick scale: about 15 s on 2 CPU cores.")
