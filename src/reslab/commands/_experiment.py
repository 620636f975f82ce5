"""CLI plumbing shared by the experiment commands and ``reslab reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reslab.errors import ReslabError
from reslab import logs
from reslab.experiments import base, declared, load, names, run_and_save


def add_common_args(parser, *, default_out: str = "reslab-report", scales: tuple[str, ...] = ("quick", "full")) -> None:
    """The flags every experiment command takes."""
    parser.add_argument("--out", default=default_out,
                        help=f"results directory; the experiment writes OUT/NAME/ (default: {default_out})")
    parser.add_argument("--scale", choices=scales, default="quick",
                        help="quick: CPU-minutes demo; " + ("medium: tens of CPU minutes; " if "medium" in scales else "")
                        + "full: the paper's scale (default: quick)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="number of seeds (default: depends on the experiment and scale)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads during the run (default: the experiment's choice)")
    parser.add_argument("--data-dir", help="directory holding the dataset files (Fashion-MNIST by default)")
    parser.add_argument("--quiet", action="store_true", help="plain log lines, no progress bar")


def check_common(args) -> None:
    """The checks of the common flags, before anything is written."""
    if args.seeds is not None and args.seeds < 1:
        raise ReslabError(f"--seeds must be >= 1, got {args.seeds}")
    if args.threads is not None and args.threads < 1:
        raise ReslabError(f"--threads must be >= 1, got {args.threads}")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise ReslabError(f"--data-dir {args.data_dir}: no such directory")


def run_one(name: str, args, overrides: dict[str, Any] | None = None, say=None) -> dict[str, Any]:
    """Build ``name``'s config from the flags (a bad one fails before anything is written),
    run it into ``args.out``, print its verdict line."""
    check_common(args)
    module = load(name)
    cfg = module.config_for(args.scale, args.seeds, threads=args.threads, **(overrides or {}))
    results = run_and_save(name, cfg, args.out, say=say or logs.progress(), quiet=args.quiet,
                           data_dir=args.data_dir)
    print(base.verdict_line(results))
    return results


def command_name(name: str) -> str:
    """``reslab looks-linear`` runs the module ``looks_linear``."""
    return name.replace("_", "-")


def add_experiment_command(sub, name: str) -> None:
    """The ``reslab NAME`` command, from what experiment ``name`` declares: its help texts, the
    common flags, and its own flags (``add_flags(parser)``) turned into config overrides by
    ``overrides(args)``."""
    module = load(name)
    add_flags = declared(name, "add_flags", None)
    overrides = declared(name, "overrides", None)

    def run(args) -> int:
        run_one(name, args, overrides(args) if overrides else None)
        print(f"results and figures: {Path(args.out) / name}")
        return 0

    p = sub.add_parser(command_name(name), help=declared(name, "HELP"), description=declared(name, "DESCRIPTION"))
    add_common_args(p, scales=module.Config.scales)
    if add_flags:
        add_flags(p)
    p.set_defaults(func=run)


def add_experiment_commands(sub) -> None:
    """One command per experiment module, in its declared order."""
    for name in names():
        add_experiment_command(sub, name)
