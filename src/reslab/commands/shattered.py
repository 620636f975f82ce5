"""``reslab shattered``: Balduzzi et al. 2017's shattered gradients (Figs. 1-3 and the theory check)."""

from __future__ import annotations

from reslab.experiments import base


def add_parser(sub) -> None:
    p = sub.add_parser(
        "shattered", help="shattered gradients: plain nets' df/dx looks like white noise, ResNets' like brown noise",
        description="Balduzzi et al. 2017 (arXiv 1702.08591): df/dx of scalar nets (width 200, ReLU, He init, "
                    "BN over the 256-point grid, statistics held fixed) over depth; plain nets vs ResNets with "
                    "beta = 1 and 0.1.  Writes OUT/shattered/results.json and three figures.  Quick scale: "
                    "20 seeds, about 10 s on 2 CPU cores (benchmarks/shattered.py).")
    base.add_common_args(p, default_out="reslab-report")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.experiments import shattered

    cfg = shattered.config_for(args.scale, seeds=args.seeds)
    results = base.run_and_save(shattered, cfg, args.out, progress=base.stderr_progress(args.quiet))
    base.print_verdict(results)
    return 0
