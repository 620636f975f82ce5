"""``reslab plot RUN_DIR...``: training and validation (and test) error against iterations,
He et al. 2016 Figs. 1/6 style; seeds of one setting drawn as mean and range."""

from __future__ import annotations

from pathlib import Path

from reslab.errors import ReslabError

DEFAULT_OUT = "curves.png"


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="plot training/validation error against iterations from run directories",
                       description="Plot error (%) against iterations from each run's metrics.jsonl, as in He et al. "
                                   "2016 Figs. 1 and 6: training dashed, validation solid, test (only runs with "
                                   "eval_test=true) dash-dotted. Runs whose config.json differ only by seed are drawn "
                                   "as their mean with a band from the lowest to the highest seed. Without --out the figure goes to curves.png, "
                                   "and an existing curves.png is kept unless --overwrite is given.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="run directories written by `reslab train`, or the --out of `reslab train --seeds` "
                        "(holding bank.json), which stands for its runs")
    p.add_argument("--out", default=None,
                   help="the PNG to write, replaced if it exists (default: curves.png, which is never replaced "
                        "without --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing curves.png when --out is not given")
    p.add_argument("--html", default=None, metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--no-train", action="store_true", help="leave the training error out")
    p.set_defaults(func=run)


def bank_runs(path: Path) -> list[Path]:
    """``path`` itself, or, for the folder of a bank (``bank.json`` and no metrics of its
    own), the bank's run directories as ``bank.json`` lists them."""
    import json

    from reslab.training.runpaths import RunPaths

    index = path / "bank.json"
    if not index.is_file() or RunPaths(path).metrics.is_file():
        return [path]
    try:
        runs = json.loads(index.read_text())["runs"]
        if not runs or not all(isinstance(r, str) for r in runs):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise ReslabError(f"{index}: not a bank index (a JSON object whose \"runs\" lists run directories)") from None
    return [path / r for r in runs]


def run(args) -> int:
    import io

    from reslab import curves
    from reslab.fileio import atomic_write

    out = Path(args.out or DEFAULT_OUT)
    if out.suffix.lower() != ".png":
        raise ReslabError(f"--out must name a .png file, got {out}")
    if args.out is None and out.exists() and not args.overwrite:
        raise ReslabError(f"{out} already exists (from an earlier `reslab plot`?); name another file with --out, "
                          "or replace it with --overwrite")
    dirs = [r for d in args.runs for r in bank_runs(Path(d))]
    groups = curves.group_runs([curves.load_run(d) for d in dirs])
    metrics = ("val_error", "test_error") if args.no_train else ("train_error", "val_error", "test_error")
    buf = io.BytesIO()  # drawn in full before anything is written: a failed draw leaves no half file
    curves.figure(groups, metrics).savefig(buf, format="png", dpi=110)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, buf.getvalue())
    print(f"{len(dirs)} run(s), {len(groups)} setting(s): {out}")
    if args.html:
        print(f"page: {curves.write_html(groups, out, args.html)}")
    return 0
