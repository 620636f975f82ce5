"""``reslab eval WEIGHTS``: error, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run, checkpoint or weights file (error, per-class accuracy, confusion)",
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


def run(args) -> int:
    from reslab.training.eval_run import evaluate, write_report

    result = evaluate(args.path, args.split, device=args.device, data_dir=args.data_dir)
    given = Path(args.path)
    if args.out:
        out = Path(args.out)
    elif given.is_dir():
        out = given  # the run directory
    elif given.is_file():
        ckpt = given
        out = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    else:  # SOURCE:MODEL
        out = Path("eval-" + str(args.path).replace(":", "-"))
    js, png = write_report(result, out)
    when = f"iteration {result['iteration']}" if result.get("iteration") is not None else f"weights: {result['source']}"
    print(f"{result['model']} on {result['dataset']} {result['split']} ({result['n']} images, {when}): "
          f"error {result['error']:.4f}, loss {result['loss']:.4f}")
    for name, acc in zip(result["class_names"], result["per_class_accuracy"]):
        print(f"  {name:<14} {acc:.4f}")
    print(f"wrote {js} and {png}")
    return 0
