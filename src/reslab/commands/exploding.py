"""``reslab exploding``: a deep ReLU net on raw 0–255 pixels without BN overflows to
inf/NaN within a few SGD steps; with normalised inputs and BN it stays finite.  Writes
OUT/exploding/results.json and two PNGs."""

from __future__ import annotations

from pathlib import Path

from reslab.experiments import base

DEFAULT_OUT = "reslab-report"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "exploding", help="exploding gradients: raw pixels without BN overflow to inf/NaN; normalised + BN is stable",
        description="Trains deep plain ReLU nets on flattened Fashion-MNIST with raw 0-255 pixels or "
                    "normalised inputs, with or without BN, and catches the step and layer where values "
                    "turn non-finite.  Quick scale: about half a minute on 2 CPU cores.")
    base.add_common_args(p, default_out=DEFAULT_OUT)
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.experiments import exploding

    cfg = exploding.config_for(args.scale, seeds=args.seeds)  # ReslabError (exit 2) on bad input
    results = base.run_and_save(exploding, cfg, args.out, progress=base.stderr_progress(args.quiet))
    base.print_verdict(results)
    print(f"results and figures: {Path(args.out) / 'exploding'}")
    return 0
