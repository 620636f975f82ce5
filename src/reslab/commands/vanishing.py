"""``reslab vanishing``: the vanishing-gradient argument factor by factor (σ' ≤ 1/4, the
per-layer backward factor σ'·‖W‖, the ten-layer 0.25^9 example), sigmoid vs tanh vs ReLU
vs ReLU+BN; writes OUT/vanishing/results.json and four PNGs."""

from reslab.commands._experiment import add_experiment_command


def add_parser(sub) -> None:
    add_experiment_command(
        sub, "vanishing",
        help="vanishing gradients: sigmoid's 0.25 derivative, per-layer backward factors, ReLU(+BN)",
        description="Deep plain fully connected nets (sigmoid, tanh, ReLU, ReLU+BN) on flattened "
                    "Fashion-MNIST: per-layer backward factors next to sigma'(z) and the weights' spectral "
                    "norms, the ten-layer 0.25^9 example, the product bound with and without the weights, "
                    "and the first/last layer gradient ratio at init and after a few SGD steps.  "
                    "Quick scale: about 20 s on one CPU thread.")
