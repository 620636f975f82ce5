"""``reslab vanishing``: sigmoid vs tanh vs ReLU vs ReLU+BN, per-layer gradient norms at
init and after a few SGD steps; writes OUT/vanishing/results.json and three PNGs."""

from __future__ import annotations

from pathlib import Path

from reslab.experiments import base

DEFAULT_OUT = "reslab-report"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "vanishing", help="vanishing gradients: sigmoid's 0.25 derivative vs ReLU(+BN), per-layer gradient norms",
        description="Per-layer gradient norms of deep plain fully connected nets (sigmoid, tanh, ReLU, "
                    "ReLU+BN) on flattened Fashion-MNIST, at init and after a few SGD steps, with the "
                    "sigmoid's derivative bound 0.25^L.  Quick scale: about half a minute on 2 CPU cores.")
    base.add_common_args(p, default_out=DEFAULT_OUT)
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.experiments import vanishing

    cfg = vanishing.config_for(args.scale, seeds=args.seeds)  # ReslabError (exit 2) on bad input
    results = base.run_and_save(vanishing, cfg, args.out, progress=base.stderr_progress(args.quiet))
    base.print_verdict(results)
    print(f"results and figures: {Path(args.out) / 'vanishing'}")
    return 0
