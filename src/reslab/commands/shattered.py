"""``reslab shattered``: Balduzzi et al. 2017's shattered gradients (Figs. 1-3)."""

from reslab.commands._experiment import add_experiment_command


def add_parser(sub) -> None:
    add_experiment_command(
        sub, "shattered",
        help="shattered gradients: plain nets' df/dx looks like white noise, ResNets' like brown noise",
        description="Balduzzi et al. 2017 (arXiv 1702.08591): df/dx of scalar nets (width 200, ReLU, He init, "
                    "BN over the 256-point grid, statistics held fixed) over depth; plain nets vs ResNets with "
                    "beta = 1 and 0.1 (residual block a + beta*ReLU(BN(W a)); the pre-activation layout is "
                    "reported as context).  Writes OUT/shattered/results.json and three figures.  Quick scale: "
                    "20 seeds, about 10 s on one thread (benchmarks/shattered.py).")
