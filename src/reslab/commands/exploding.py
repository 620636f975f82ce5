"""``reslab exploding``: a deep ReLU net on raw 0–255 pixels without BN overflows to
inf/NaN within a few SGD steps; with normalised inputs and BN it stays finite.  Writes
OUT/exploding/results.json and two PNGs."""

from reslab.experiments import base


def add_parser(sub) -> None:
    base.add_experiment_command(
        sub, "exploding",
        help="exploding gradients: raw pixels without BN overflow to inf/NaN; normalised + BN is stable",
        description="Trains deep plain ReLU nets on flattened Fashion-MNIST with raw 0-255 pixels or "
                    "normalised inputs, with or without BN, and catches the step and layer where values "
                    "turn non-finite.  Quick scale: about 15 s on 2 CPU cores.")
