"""``reslab train``: He et al.'s recipe (or a quick one) on CPU, GPU or torchrun/DDP."""

from __future__ import annotations

import os
import sys

from reslab.errors import ReslabError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a ResNet or plain net (he2016 or quick recipe)",
                       description="Train a model. Settings layer as: defaults -> --recipe -> --config -> "
                                   "--set/flags. Run under torchrun for DDP; --batch-size is the global batch.")
    p.add_argument("--model", help="model name (see `reslab info --list`)")
    p.add_argument("--dataset", help="fashion-mnist (default), mnist, cifar10, cifar100, synthetic")
    p.add_argument("--data-dir", help="directory holding the dataset files")
    p.add_argument("--recipe", choices=["he2016", "quick"], help="he2016: §4.2 exactly; quick: a CPU demo")
    p.add_argument("--config", help="a TOML or JSON file of config keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--iterations", type=int, help="iterations to train (not epochs)")
    p.add_argument("--batch-size", type=int, help="global batch: images per iteration over all ranks (default 128)")
    p.add_argument("--out", help="run directory (config, metrics.jsonl, checkpoints)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that already holds a run (its files are replaced)")
    p.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.training.config import TrainConfig, load_file, parse_sets, resolve
    from reslab.training.loop import TrainingDiverged, train

    if args.resume:
        given = [flag for flag, v in (("--model", args.model), ("--dataset", args.dataset), ("--recipe", args.recipe),
                                      ("--config", args.config), ("--set", args.set), ("--iterations", args.iterations),
                                      ("--batch-size", args.batch_size), ("--out", args.out), ("--data-dir", args.data_dir),
                                      ("--overwrite", args.overwrite)) if v]
        if given:
            raise ReslabError(f"--resume continues with the config saved in the run; drop {', '.join(given)}")
        cfg, out = None, args.resume
    else:
        if not args.out:
            raise ReslabError("--out is required: the run directory for config, metrics and checkpoints")
        overrides = parse_sets(args.set)
        for key in ("model", "dataset", "data_dir", "iterations", "batch_size"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        cfg, out = resolve(recipe_name=args.recipe, file=args.config, overrides=overrides), args.out
        iterations_set = "iterations" in overrides or (args.config and "iterations" in load_file(args.config))
        if args.recipe is None and not iterations_set and cfg.iterations == TrainConfig.iterations \
                and os.environ.get("RANK", "0") == "0":
            print(f"reslab train: warning: no --recipe and no iterations set, so this runs the default "
                  f"{cfg.iterations:,} iterations (the he2016 schedule: hours on a GPU, days on a CPU); "
                  "for a CPU demo use --recipe quick, or set --iterations N", file=sys.stderr)
    try:
        result = train(cfg, out, resume=bool(args.resume), overwrite=args.overwrite, quiet=args.quiet)
    except TrainingDiverged as err:
        print(f"reslab train: error: {err}", file=sys.stderr)
        return 3
    status = "interrupted" if result.interrupted else "done"
    val = f"{result.val_error:.4f}" if result.val_error is not None else "n/a"
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line
            print(f"reslab train: {status} at iteration {result.iterations}; val error {val}, "
              f"{result.images_per_s:.0f} img/s, {result.seconds:.0f} s -> {result.run_dir}")
    return 130 if result.interrupted else 0
