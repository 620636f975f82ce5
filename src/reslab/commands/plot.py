"""``reslab plot RUN_DIR...``: training and validation (and test) error against iterations,
He et al. 2016 Figs. 1/6 style; seeds of one setting drawn as mean and range."""

from __future__ import annotations

from pathlib import Path

from reslab.errors import ReslabError


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="plot training/validation error against iterations from run directories",
                       description="Plot error (%) against iterations from each run's metrics.jsonl, as in He et al. "
                                   "2016 Figs. 1 and 6: training dashed, validation solid, test (only runs with "
                                   "eval_test=true) dash-dotted. Runs whose config.json differ only by seed are drawn "
                                   "as their mean with a band from the lowest to the highest seed.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by `reslab train`")
    p.add_argument("--out", default="curves.png", help="the PNG to write (default: curves.png)")
    p.add_argument("--html", default=None, metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--no-train", action="store_true", help="leave the training error out")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab import curves
    from reslab.experiments.figures import save_figure

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ReslabError(f"--out must name a .png file, got {out}")
    groups = curves.group_runs([curves.load_run(d) for d in args.runs])
    metrics = ("val_error", "test_error") if args.no_train else ("train_error", "val_error", "test_error")
    fig = curves.figure(groups, metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    print(f"{len(args.runs)} run(s), {len(groups)} setting(s): {out}")
    if args.html:
        print(f"page: {curves.write_html(groups, out, args.html)}")
    return 0
