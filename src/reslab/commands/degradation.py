"""``reslab degradation``: plain vs residual nets at two or more depths (He et al. Figs. 1, 6)."""

from __future__ import annotations

from reslab.commands._experiment import add_experiment_command


def _flags(p) -> None:
    p.add_argument("--depths", type=int, nargs="+", help="depths, each 6n+2 (default: 20 56; full: 20 32 44 56 110)")
    p.add_argument("--recipe", choices=["quick", "he2016"], help="quick (one-cycle, CPU) or he2016 (§4.2, 64k iterations)")
    p.add_argument("--dataset", help="fashion-mnist (quick/medium default), cifar10 (full default), ...")
    p.add_argument("--iterations", type=int, help="iterations per net")
    p.add_argument("--train-subset", type=int, help="training images used")
    p.add_argument("--width", type=float, help="multiplier of the paper's 16/32/64 filters")
    p.add_argument("--device", help="auto, cpu, cuda")


def _overrides(args) -> dict:
    return dict(depths=tuple(args.depths) if args.depths else None, recipe=args.recipe, dataset=args.dataset,
                iterations=args.iterations, train_subset=args.train_subset, width=args.width, device=args.device)


def add_parser(sub) -> None:
    add_experiment_command(
        sub, "degradation", extra=_flags, overrides=_overrides,
        help="the degradation problem: plain-56 trains worse than plain-20, ResNet-56 better than ResNet-20",
        description="Train plain and residual nets of several depths on the same data, budget and seeds; "
                    "judge 'deeper plain nets train worse' and 'deeper ResNets train better' separately, "
                    "with 95% confidence intervals over seeds; plot He et al. Fig. 6-style curves.  "
                    "quick: about 7 minutes on 2 CPU cores; medium: the budget near convergence "
                    "(see benchmarks/RESULTS.md); full: CIFAR-10 with the he2016 recipe.")
