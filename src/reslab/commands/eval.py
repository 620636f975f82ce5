"""``reslab eval RUN_DIR|CHECKPOINT``: error, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run or checkpoint (error, per-class accuracy, confusion)")
    p.add_argument("path", help="a run directory (uses its best, else latest, checkpoint) or a .pt checkpoint")
    p.add_argument("--split", default="val", help="val (default) or test")
    p.add_argument("--data-dir", help="directory holding the dataset files")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--out", help="where to write eval_SPLIT.json and confusion_SPLIT.png (default: the run dir)")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.training.eval_run import evaluate, find_checkpoint, write_report

    result = evaluate(args.path, args.split, device=args.device, data_dir=args.data_dir)
    if args.out:
        out = Path(args.out)
    elif Path(args.path).is_dir():
        out = Path(args.path)  # the run directory
    else:
        ckpt = find_checkpoint(args.path)
        out = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    js, png = write_report(result, out)
    print(f"{result['model']} on {result['dataset']} {args.split} ({result['n']} images, iteration {result['iteration']}): "
          f"error {result['error']:.4f}, loss {result['loss']:.4f}")
    for name, acc in zip(result["class_names"], result["per_class_accuracy"]):
        print(f"  {name:<14} {acc:.4f}")
    print(f"wrote {js} and {png}")
    return 0
