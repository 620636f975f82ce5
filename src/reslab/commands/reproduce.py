"""``reslab reproduce``: every experiment with ``IN_REPRODUCE``, then the report."""

from __future__ import annotations

import time

from reslab import logs
from reslab.commands._experiment import add_common_args, check_common
from reslab.experiments import REPRODUCE, base, load, run_and_save


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="run all four experiments and write report.html / report.md",
                       description="Vanishing, exploding and shattered gradients, and the degradation problem, "
                                   "each judged part by part (reproduced, partly reproduced or not reproduced); "
                                   "then a self-contained report.html and report.md.")
    add_common_args(p, scales=("quick", "medium", "full"))
    p.add_argument("--only", nargs="+", choices=REPRODUCE, metavar="NAME",
                   help=f"run only these experiments ({', '.join(REPRODUCE)})")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.report.build import build

    check_common(args)
    names = args.only or REPRODUCE
    # Every config is built, and so checked, before anything runs or is written.  "medium"
    # is a scale of the experiments that train; the others run their quick preset with it.
    configs = {}
    for name in names:
        module = load(name)
        scale = args.scale if args.scale in module.Config.scales else "quick"
        configs[name] = module.config_for(scale, args.seeds, threads=args.threads)
    say = logs.progress()
    t0 = time.perf_counter()
    for i, (name, cfg) in enumerate(configs.items(), 1):
        say(f"[{i}/{len(names)}] {name} ({cfg.scale}): {load(name).CLAIM.split(':')[0][:90]}")
        results = run_and_save(name, cfg, args.out, say=say, quiet=args.quiet, data_dir=args.data_dir)
        print(base.verdict_line(results), flush=True)
    html_path, md_path = build(args.out)
    say(f"done in {time.perf_counter() - t0:.0f} s")
    print(f"report: {html_path} (and {md_path})")
    return 0
