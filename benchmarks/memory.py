"""Peak resident memory of a training run.

    PYTHONPATH=src .venv/bin/python benchmarks/memory.py [--iterations 30]

``ru_maxrss`` of a fresh process training ResNet-56 on Fashion-MNIST (28 -> 32) for
``--iterations`` iterations plus the validation pass; target <= 1.5 GiB.  Jobs run through
:mod:`harness`.
"""

from __future__ import annotations

import argparse
import resource

import harness


def job_memory(model: str, iterations: int) -> dict:
    res = harness.job_trainer(model, "auto", windows=iterations // 10 - 1, steps=10, dataset="fashion-mnist",
                              pad_to=32, train_subset=None, val_size=None)
    return {"maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rates": res["rates"]}


JOBS = {"memory": job_memory}


def run(args, R: dict, log, model: str = "resnet56", iterations: int = 30) -> dict:
    job = harness.Jobs(__file__, R, args.threads, log)
    return {"memory": dict(job(job="memory", model=model, iterations=iterations), model=model, iterations=iterations)}


def report(R: dict, log) -> None:
    if "memory" not in R:
        return
    m = R["memory"]
    gib = m["maxrss_bytes"] / 2 ** 30
    log("")
    log(f"peak RSS, {m.get('model', 'resnet56')} on Fashion-MNIST (28->32), {m.get('iterations', 30)} iterations + "
        f"validation: {gib:.2f} GiB (target <= 1.5 GiB: {'met' if gib <= 1.5 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(ap)
    ap.add_argument("--iterations", type=int, default=30, help="iterations (a multiple of 10, at least 20)")
    ap.add_argument("--model", default="resnet56")
    harness.standalone(__file__, JOBS, lambda args, R, log: run(args, R, log, args.model, args.iterations), report, ap)


if __name__ == "__main__":
    main()
