"""``reslab shattered``: Balduzzi et al. 2017's shattered gradients (Figs. 1-3 and the theory check)."""

from reslab.experiments import base


def add_parser(sub) -> None:
    base.add_experiment_command(
        sub, "shattered",
        help="shattered gradients: plain nets' df/dx looks like white noise, ResNets' like brown noise",
        description="Balduzzi et al. 2017 (arXiv 1702.08591): df/dx of scalar nets (width 200, ReLU, He init, "
                    "BN over the 256-point grid, statistics held fixed) over depth; plain nets vs ResNets with "
                    "beta = 1 and 0.1.  Writes OUT/shattered/results.json and three figures.  Quick scale: "
                    "20 seeds, about 10 s on 2 CPU cores (benchmarks/shattered.py).")
