"""``reslab reproduce``: every seed claim, then the report.  The main job."""

from __future__ import annotations

import time

from reslab.errors import ReslabError
from reslab.experiments import EXPERIMENTS, base


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="run all four experiments and write report.html / report.md",
                       description="Vanishing, exploding and shattered gradients, and the degradation problem, "
                                   "each with a verdict; then a self-contained report.html and report.md.")
    base.add_common_args(p, default_out="reslab-report")
    p.add_argument("--only", nargs="+", choices=EXPERIMENTS, metavar="NAME",
                   help=f"run only these experiments ({', '.join(EXPERIMENTS)})")
    p.add_argument("--data-dir", help="directory holding the dataset files (Fashion-MNIST by default)")
    p.set_defaults(func=run)


def run(args) -> int:
    import importlib

    from reslab.report import build

    if args.seeds is not None and args.seeds < 1:
        raise ReslabError(f"--seeds must be >= 1, got {args.seeds}")
    say = base.stderr_progress(args.quiet)
    names = args.only or EXPERIMENTS
    t0 = time.perf_counter()
    for i, name in enumerate(names, 1):
        module = importlib.import_module(f"reslab.experiments.{name}")
        overrides = {"data_dir": args.data_dir} if args.data_dir and "data_dir" in module.Config.__dataclass_fields__ else {}
        cfg = module.config_for(args.scale, args.seeds, **overrides)
        say(f"[{i}/{len(names)}] {name}: {module.CLAIM.split(':')[0][:90]}")
        results = base.run_and_save(module, cfg, args.out, say)
        base.print_verdict(results)
    html_path, md_path = build(args.out)
    say(f"done in {time.perf_counter() - t0:.0f} s")
    print(f"report: {html_path} (and {md_path})")
    return 0
