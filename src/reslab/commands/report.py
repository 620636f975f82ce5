"""``reslab report DIR``: rebuild report.html and report.md from saved results (no training)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="rebuild the report from saved results, without training",
                       description="Rebuild DIR/report.html (self-contained, figures embedded) and DIR/report.md "
                                   "from the results.json files that `reslab reproduce` or the experiment "
                                   "commands saved in DIR; nothing is trained or re-measured.")
    p.add_argument("dir", help="a results directory written by `reslab reproduce` or the experiment commands")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.report.build import build

    html_path, md_path = build(args.dir)
    print(f"wrote {html_path} and {md_path}")
    return 0
