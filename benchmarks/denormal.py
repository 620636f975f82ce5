"""Denormals: how much slower a deep plain net's first epoch is without flush-to-zero.

    PYTHONPATH=src .venv/bin/python benchmarks/denormal.py [--epochs 3]

plain-56 images/s in its first epoch against later epochs (10 iterations per epoch), in three
variants: ``trainer`` (``train()`` as is: ``torch.set_flush_denormal(True)`` before any
parallel op, so every OpenMP thread inherits it), ``off`` (``RESLAB_FLUSH_DENORMAL=0``: the
trainer leaves flushing off) and ``pool-first`` (the OpenMP pool already running when
``train()`` flushes: only the main thread's MXCSR changes).  Target: <= 1.2x.  The trainer
and off variants run twice (A/B; window noise is ~10%).  Jobs run through :mod:`harness`.
"""

from __future__ import annotations

import argparse

import harness
from harness import BATCH, med

VARIANTS = ("trainer", "off", "trainer", "off", "pool-first")


def flushed_share() -> float:
    """Share of a 2-thread elementwise op whose denormal inputs were flushed to zero.  MXCSR's
    flush-to-zero bits are per thread: 1.0 means every OpenMP thread flushes, 0.5 (with 2
    threads) only the main one.  The denormals are made from int bits, not by FP arithmetic."""
    import torch

    x = torch.full((1 << 22,), 1 << 20, dtype=torch.int32).view(torch.float32)  # ~1.5e-39
    return float((x * 1.0 == 0).float().mean())


def job_denormal(variant: str, model: str, epochs: int, dataset: str = "synthetic") -> dict:
    """One variant (the module docstring).  A warm-up step at the same shapes runs first so
    that the first epoch's time holds numerics, not oneDNN's kernel creation."""
    import torch
    import torch.nn.functional as F

    import reslab
    from reslab.training.host import process_settings

    if variant == "trainer":
        torch.set_flush_denormal(True)
    channels = 1 if dataset == "fashion-mnist" else 3
    warm = reslab.create_model(model, in_channels=channels).to(memory_format=torch.channels_last)
    x = torch.randn(BATCH, channels, 32, 32).contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        F.cross_entropy(warm(x), torch.zeros(BATCH, dtype=torch.long)).backward()
    del warm
    flushed_before = flushed_share()
    with process_settings(seed=0, cpu=True, deterministic=False):  # what train() sets for its run
        flushed_in_train = flushed_share()
    extra = dict(pad_to=32, val_size=256) if dataset == "fashion-mnist" else {}
    res = harness.job_trainer(model, "auto", windows=2 * epochs - 1, steps=5, dataset=dataset, train_subset=1280,
                              **extra)
    rates = [res["warmup"]] + res["rates"]  # two 5-iteration windows per 10-iteration epoch
    per_epoch = [2 / (1 / rates[i] + 1 / rates[i + 1]) for i in range(0, len(rates) - 1, 2)]
    return {"windows": rates, "epochs": per_epoch, "flushed_share_in_train": flushed_in_train,
            "flushed_share_before": flushed_before}


JOBS = {"denormal": job_denormal}


def run(args, R: dict, log, model: str = "plain56") -> dict:
    job = harness.Jobs(__file__, R, args.threads, log)
    out: dict = {"trainer": [], "off": [], "pool-first": []}
    for v in VARIANTS:
        env = {"RESLAB_FLUSH_DENORMAL": "0"} if v == "off" else {}
        out[v].append(job(job="denormal", variant=v, model=model, epochs=args.epochs, env=env))
    return {"denormal": out, "denormal_model": model}


def report(R: dict, log) -> None:
    if "denormal" not in R:
        return
    log("")
    log(f"| {R.get('denormal_model', 'plain56')}, images/s per 10-iteration epoch | epoch 1 | later epochs (median) | slowdown (target <= 1.2x) "
        "| share of a parallel op flushed during train() |")
    log("|---|---:|---:|---:|---:|")
    names = {"trainer": "train() as is (flush-to-zero on every thread)",
             "off": "flush-to-zero off (RESLAB_FLUSH_DENORMAL=0)", "pool-first": "OpenMP pool started before train()"}
    for v, runs in R["denormal"].items():
        for d in runs:
            first, later = d["epochs"][0], med(d["epochs"][1:])
            log(f"| {names[v]} | {first:.1f} | {later:.1f} | {later / first:.2f}x | {d['flushed_share_in_train']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(ap)
    ap.add_argument("--epochs", type=int, default=3, help="10-iteration epochs per run")
    ap.add_argument("--model", default="plain56", help="the net (default plain56)")
    harness.standalone(__file__, JOBS, lambda args, R, log: run(args, R, log, args.model), report, ap)


if __name__ == "__main__":
    main()
