"""``reslab train``: He et al.'s recipe (or a quick one) on CPU, GPU or torchrun/DDP;
``--seeds S...`` trains one run per seed, as one bank where that pays
(:func:`reslab.training.bank.train_seeds`), into ``OUT/seedS``."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from reslab.errors import ReslabError
from reslab.training.runpaths import RunPaths

BANK_INDEX = "bank.json"  # written by reslab.training.bank in the runs' common parent


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
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="train one run per seed into OUT/seedSEED, as one bank (one grouped net for all seeds) "
                        "where that pays, else one after another (the reason is printed); needs --out, or "
                        "--resume OUT to continue the bank")
    p.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    p.set_defaults(func=run)


def seed_dirs(out: str | Path, seeds: list[int]) -> list[Path]:
    """The run directories of ``seeds`` under ``out``: ``out/seed0``, ``out/seed1``, ..."""
    return [Path(out) / f"seed{s}" for s in seeds]


def _bank_seeds(out: Path, seeds: list[int] | None) -> list[int]:
    """The seeds to resume in ``out``: ``--seeds`` if given, else those in ``out/bank.json``;
    each must have its run directory."""
    if seeds is None:
        try:
            index = json.loads((out / BANK_INDEX).read_text())
            seeds = [int(s) for s in index["seeds"]]
        except (OSError, ValueError, KeyError, TypeError):
            raise ReslabError(f"{out}: no readable {BANK_INDEX}; name the seeds to resume with --seeds") from None
    missing = [str(d) for d in seed_dirs(out, seeds) if not RunPaths(d).config.is_file()]
    if missing:
        raise ReslabError(f"--resume {out} --seeds: no run to resume in {', '.join(missing)} "
                          f"(a bank's runs are OUT/seedSEED)")
    return seeds


def _run_seeds(args, cfg) -> int:
    """``--seeds``: one bank (or the fallback's separate runs) into OUT/seedS."""
    from reslab.training.bank import train_seeds
    from reslab.training.config import from_dict
    from reslab.training.loop import TrainingDiverged

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ReslabError("--seeds trains on one process (a bank is one CPU run); run it without torchrun")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ReslabError(f"--seeds: need distinct seeds >= 0, got {args.seeds}")
    out = Path(args.resume or args.out)
    seeds = _bank_seeds(out, args.seeds) if args.resume else args.seeds
    dirs = seed_dirs(out, seeds)
    if args.resume:  # the config saved in the runs (train_bank checks that they agree)
        cfg = from_dict(json.loads(RunPaths(dirs[0]).config.read_text()))
    say = logging.getLogger("reslab.train").info
    try:
        results = train_seeds(cfg, seeds, dirs, resume=bool(args.resume), overwrite=args.overwrite,
                              quiet=args.quiet, say=say)
    except TrainingDiverged as err:
        print(f"reslab train: error: {err}", file=sys.stderr)
        return 3
    for seed, result in zip(seeds, results):
        _summary(result, f"seed {seed} ")
    return 130 if any(r.interrupted for r in results) else 0


def _summary(result, who: str = "") -> None:
    status = "interrupted" if result.interrupted else "done"
    val = f"{result.val_error:.4f}" if result.val_error is not None else "n/a"
    print(f"reslab train: {who}{status} at iteration {result.iterations}; val error {val}, "
          f"{result.images_per_s:.0f} img/s, {result.seconds:.0f} s -> {result.run_dir}")


def run(args) -> int:
    from reslab.training.config import TrainConfig, load_file, parse_sets, resolve
    from reslab.training.loop import TrainingDiverged, train

    if args.resume and args.seeds is None and (Path(args.resume) / BANK_INDEX).is_file() \
            and not RunPaths(args.resume).config.is_file():
        args.seeds = _bank_seeds(Path(args.resume), None)  # OUT of a bank: resume the bank
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
            raise ReslabError("--out is required: the run directory for config, metrics and checkpoints"
                              + (" (with --seeds: the folder for OUT/seedSEED)" if args.seeds else ""))
        overrides = parse_sets(args.set)
        if args.seeds and "seed" in overrides:
            raise ReslabError("--seeds sets each run's seed; drop --set seed=...")
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
    if args.seeds is not None:
        return _run_seeds(args, cfg)
    try:
        result = train(cfg, out, resume=bool(args.resume), overwrite=args.overwrite, quiet=args.quiet)
    except TrainingDiverged as err:
        print(f"reslab train: error: {err}", file=sys.stderr)
        return 3
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line
        _summary(result)
    return 130 if result.interrupted else 0
