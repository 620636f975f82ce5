"""``reslab eval WEIGHTS``: error, loss, per-class error, confusion matrix."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from reslab.training.runpaths import RunPaths


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run, checkpoint or weights file (error, per-class error, confusion)",
                       description="Evaluate weights on a dataset split. WEIGHTS is a run directory (its best, else "
                                   "latest, checkpoint, else model.safetensors), a reslab .pt checkpoint, a "
                                   ".safetensors file (the trainer's, or one written by `reslab weights import`), "
                                   "or SOURCE:MODEL for published weights (e.g. akamaster:resnet56; see "
                                   "`reslab weights list`).")
    p.add_argument("path", metavar="WEIGHTS", help="run directory, .pt, .safetensors, or SOURCE:MODEL")
    p.add_argument("--split", default=None,
                   help="val or test (default: val for weights trained by reslab, test for imported weights)")
    p.add_argument("--data-dir", help="directory holding the dataset files")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--out", help="where to write eval_SPLIT.json and confusion_SPLIT.png (default: the run dir, the "
                                 "weights file's folder, or ./eval-SOURCE-MODEL)")
    p.set_defaults(func=run)


def _out_dir(args) -> Path:
    given = Path(args.path)
    if args.out:
        return Path(args.out)
    if given.is_dir():
        return given  # the run directory
    if given.is_file():
        return given.parent.parent if given.parent.name == RunPaths.CHECKPOINTS else given.parent
    return Path("eval-" + str(args.path).replace(":", "-"))  # SOURCE:MODEL


@contextmanager
def _hold_if_run(out: Path):
    """A run directory is written by one process at a time: hold its lock (the trainer's,
    :mod:`reslab.training.rundir`) while evaluating into it, refused with one line while a
    run holds it."""
    from reslab.training import rundir

    if not any((out / m).exists() for m in rundir.RUN_MARKERS):
        yield
        return
    fd = rundir._acquire(out)
    try:
        yield
    finally:
        os.close(fd)


def per_class_lines(result: dict) -> list[str]:
    """A labelled table: class, its images in the split, its error (the headline's measure)."""
    counts = [sum(row) for row in result["confusion"]]
    lines = [f"  {'class':<14} {'images':>6}  error"]
    lines += [f"  {name:<14} {n:>6}  {1 - acc:.4f}"
              for name, n, acc in zip(result["class_names"], counts, result["per_class_accuracy"])]
    return lines


def run(args) -> int:
    from reslab.training.eval_run import evaluate, write_report

    out = _out_dir(args)
    with _hold_if_run(out):
        result = evaluate(args.path, args.split, device=args.device, data_dir=args.data_dir)
        js, png = write_report(result, out)
    when = f"iteration {result['iteration']}" if result.get("iteration") is not None else f"weights: {result['source']}"
    print(f"{result['model']} on {result['dataset']} {result['split']} ({result['n']} images, {when}): "
          f"error {result['error']:.4f}, loss {result['loss']:.4f}")
    print("\n".join(per_class_lines(result)))
    print(f"wrote {js} and {png}")
    return 0
