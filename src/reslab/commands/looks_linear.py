"""``reslab looks-linear``: the looks-linear initialisation experiment
(:mod:`reslab.experiments.looks_linear`).  Not part of ``reslab reproduce``: it is not
registered in :data:`reslab.experiments.EXPERIMENTS`, so this command runs the module itself,
as :func:`reslab.commands._experiment.run_one` does for registered experiments."""

from __future__ import annotations

import importlib
from pathlib import Path

from reslab import logs
from reslab.commands._experiment import add_common_args, check_common

NAME = "looks_linear"


def add_parser(sub) -> None:
    from reslab.experiments.looks_linear import Config

    p = sub.add_parser("looks-linear", help="Balduzzi et al. §5: looks-linear init keeps deep plain nets unshattered",
                       description="A deep plain CReLU net with looks-linear initialisation ([W0, -W0], W0 "
                                   "orthogonal) is linear at init, so its df/dx does not shatter; a He-initialised "
                                   "ReLU net of the same depth does. Then plain-56 with looks-linear init, plain-56 "
                                   "with He init and ResNet-56 train on Fashion-MNIST (3 seeds): the looks-linear "
                                   "net should train better than its He twin and about as well as the ResNet. "
                                   "Writes OUT/looks_linear/.")
    add_common_args(p, scales=Config.scales)
    p.add_argument("--depths", type=int, nargs="+", default=None, metavar="D", help="hidden layers per net")
    p.add_argument("--width", type=int, default=None, help="units per hidden layer (default: 200)")
    p.add_argument("--train-iterations", type=int, default=None, metavar="N",
                   help="iterations per CIFAR net in the training half (default: 600; 0 skips training)")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.experiments import base
    from reslab.experiments import looks_linear as module

    check_common(args)
    overrides = {"depths": tuple(args.depths) if args.depths else None, "width": args.width,
                 "train_iterations": args.train_iterations}
    cfg = module.config_for(args.scale, args.seeds, threads=args.threads, **overrides)
    ctx = base.Context(Path(args.out) / NAME, say=logs.progress(), quiet=args.quiet, data_dir=args.data_dir)
    with base.torch_threads(cfg.threads):
        results = module.run(cfg, ctx)
    base.save_results(results, ctx.out_dir)
    importlib.import_module(f"reslab.experiments.{NAME}_plots").plot(results, ctx.out_dir)
    print(base.verdict_line(results))
    print(f"results and figures: {ctx.out_dir}")
    return 0
