"""``reslab degradation``: plain vs residual nets at two or more depths (He et al. Figs. 1, 6)."""

from __future__ import annotations

from reslab.errors import ReslabError
from reslab.experiments import base


def add_parser(sub) -> None:
    p = sub.add_parser("degradation", help="the degradation problem: plain-56 vs plain-20, and ResNets",
                       description="Train plain and residual nets of several depths on the same data and budget; "
                                   "plot training (dashed) and test (bold) error as in He et al. Fig. 6.")
    base.add_common_args(p, default_out="reslab-report")
    p.add_argument("--depths", type=int, nargs="+", help="depths, each 6n+2 (default: 20 56; full: 20 32 44 56 110)")
    p.add_argument("--recipe", choices=["quick", "he2016"], help="quick (CPU demo) or he2016 (§4.2, 64k iterations)")
    p.add_argument("--dataset", help="fashion-mnist (quick default), cifar10 (full default), ...")
    p.add_argument("--data-dir", help="directory holding the dataset files")
    p.add_argument("--iterations", type=int, help="iterations per net (batch 128)")
    p.add_argument("--train-subset", type=int, help="training images used (quick scale)")
    p.add_argument("--device", help="auto, cpu, cuda")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.experiments import degradation

    if args.seeds is not None and args.seeds < 1:
        raise ReslabError(f"--seeds must be >= 1, got {args.seeds}")
    for d in args.depths or ():
        if d < 8 or (d - 2) % 6:
            raise ReslabError(f"--depths: {d} is not 6n+2 (valid: 8, 14, 20, 32, 44, 56, 110, ...)")
    if args.iterations is not None and args.iterations < 1:
        raise ReslabError(f"--iterations must be >= 1, got {args.iterations}")
    cfg = degradation.config_for(args.scale, args.seeds, depths=tuple(args.depths) if args.depths else None,
                                 recipe=args.recipe, dataset=args.dataset, data_dir=args.data_dir,
                                 iterations=args.iterations, train_subset=args.train_subset, device=args.device)
    results = base.run_and_save(degradation, cfg, args.out, base.stderr_progress(args.quiet))
    base.print_verdict(results)
    return 0
