"""What :mod:`reslab.experiments.degradation` declares once its owner moves these lines into it
(then this file and its entry in ``reslab.experiments._PENDING`` go)."""

NAME = "degradation"
TITLE = "The degradation problem (He et al. 2016)"
IN_REPRODUCE = True
ORDER = 40
HELP = "the degradation problem: plain-56 trains worse than plain-20, ResNet-56 better than ResNet-20"
DESCRIPTION = ("Train plain and residual nets of several depths on the same data, budget and seeds; "
               "judge each part of He et al.'s claim (deeper plain nets train worse, the constructed solution beats "
               "what the solver finds, deeper ResNets train better) with paired 95% intervals over seeds; "
               "each net's seeds train together as one bank; plot He et al. Fig. 6-style curves.  "
               "quick: the budget of `reslab reproduce` on a 2-core CPU (benchmarks/RESULTS.md); "
               "medium: nearer convergence; full: CIFAR-10 with the he2016 recipe.")


def add_flags(p) -> None:
    p.add_argument("--depths", type=int, nargs="+", help="depths, each 6n+2 (default: 20 56; full: 20 32 44 56 110)")
    p.add_argument("--recipe", choices=["quick", "he2016"], help="quick (one-cycle, CPU) or he2016 (§4.2, 64k iterations)")
    p.add_argument("--dataset", help="fashion-mnist (quick/medium default), cifar10 (full default), ...")
    p.add_argument("--iterations", type=int, help="iterations per net")
    p.add_argument("--train-subset", type=int, help="training images used")
    p.add_argument("--width", type=float, help="multiplier of the paper's 16/32/64 filters")
    p.add_argument("--batch-size", type=int, help="images per iteration")
    p.add_argument("--workers", type=int, help="processes training at once (each with --threads threads)")
    p.add_argument("--bank-size", type=int, help="seeds trained together as one bank (default: all)")
    p.add_argument("--no-bank", action="store_true", help="train every seed as a separate run")
    p.add_argument("--device", help="auto, cpu, cuda")


def overrides(args) -> dict:
    return dict(depths=tuple(args.depths) if args.depths else None, recipe=args.recipe, dataset=args.dataset,
                iterations=args.iterations, train_subset=args.train_subset, width=args.width, device=args.device,
                batch_size=args.batch_size, workers=args.workers, bank_size=args.bank_size,
                bank=False if args.no_bank else None)
