"""Throughput: reslab's trainer against the typical CIFAR pipeline, and an ablation.

    PYTHONPATH=src .venv/bin/python benchmarks/throughput.py [--repeats 5] [--steps 10] [--rounds 2]

images/s of ResNet-20 and ResNet-56 at batch 128 on CIFAR-shaped synthetic data through
``reslab.training.train`` (amp auto, channels_last; amp forced bf16, and amp off where auto
does not already mean off), and of the reference pipeline in ``reference_pipeline.py``; the
reslab/reference ratio (target >= 2.0x), the median of per-round ratios over ``--rounds``
ABBA rounds.  Each figure is the median of ``--repeats`` timed windows of ``--steps``
iterations after a warm-up window (pooled over rounds).  Then ResNet-20 with one reslab
setting undone at a time (glibc malloc defaults, NCHW, both), each paired with a
neighbouring default job.  Jobs run through :mod:`harness`.
"""

from __future__ import annotations

import argparse
import sys

import harness
from harness import med, pooled, spread

MODELS = ("resnet20", "resnet56")


def job_reference(model: str, windows: int, steps: int) -> dict:
    sys.path.insert(0, str(harness.HERE))
    from reference_pipeline import window_rates

    from reslab.data import make_synthetic

    images, labels = make_synthetic("train", 10000)
    return {"rates": window_rates(model, images, labels, windows=windows, steps_per_window=steps,
                                  warmup_steps=steps)}


JOBS = {"trainer": harness.job_trainer, "reference": job_reference}


def add_args(ap) -> None:
    ap.add_argument("--repeats", type=int, default=5, help="timed windows per throughput figure (median)")
    ap.add_argument("--steps", type=int, default=10, help="iterations per timed window")
    ap.add_argument("--rounds", type=int, default=2,
                    help="ABBA rounds of (reslab, reference) per model; the ratio is the median over rounds")


def run(args, R: dict, log, models=MODELS) -> dict:
    import torch

    from reslab.training.setup import bf16_supported

    job = harness.Jobs(__file__, R, args.threads, log)
    w, s = args.repeats, args.steps
    auto_bf16 = bf16_supported(torch.device("cpu"))
    log(f"amp=auto  resolves to {'bf16 autocast' if auto_bf16 else 'fp32 (no native bf16: oneDNN would emulate it)'}")
    amps = ["auto", "bf16"] + (["off"] if auto_bf16 else [])
    out: dict = {"amp_auto_bf16": auto_bf16, "trainer": {}, "reference": {}, "rounds": {}, "ablation": {}}
    # This VM's speed drifts by 10-35% over minutes (the matmul peak too), so reslab and the
    # reference alternate in ABBA order over --rounds rounds, and the ratio is the median of
    # the per-round ratios.  bf16 (emulated, slow) runs once with half-length windows.
    for m in models:
        arms: dict = {"auto": [], "reference": []}
        for r in range(args.rounds):
            for arm in (("auto", "reference") if r % 2 == 0 else ("reference", "auto")):
                if arm == "reference":
                    arms[arm].append(job(job="reference", model=m, windows=w, steps=s))
                else:
                    arms[arm].append(job(job="trainer", model=m, amp="auto", windows=w, steps=s))
        out["rounds"][m] = [med(a["rates"]) / med(b["rates"]) for a, b in zip(arms["auto"], arms["reference"])]
        out["trainer"][m] = {"auto": pooled(arms["auto"])}
        out["reference"][m] = pooled(arms["reference"])
        for a in amps[1:]:
            out["trainer"][m][a] = job(job="trainer", model=m, amp=a, windows=w, steps=max(1, s // 2))
    # Where the gain comes from (ResNet-20): one reslab setting undone at a time, each arm
    # paired with a neighbouring default job (alternating order) so drift cancels.
    ablations = {"glibc malloc defaults (RESLAB_MALLOC=system)": dict(env={"RESLAB_MALLOC": "system"}),
                 "NCHW (channels_last=False)": dict(channels_last=False),
                 "both undone": dict(channels_last=False, env={"RESLAB_MALLOC": "system"})}
    for i, (name, over) in enumerate(ablations.items()):
        pair = {}
        for which in (("default", "arm") if i % 2 == 0 else ("arm", "default")):
            pair[which] = job(job="trainer", model="resnet20", amp="auto", windows=w, steps=s,
                              **(over if which == "arm" else {}))
        out["ablation"][name] = dict(pair["arm"], default_rates=pair["default"]["rates"],
                                     ratio=med(pair["arm"]["rates"]) / med(pair["default"]["rates"]))
    return out


def report(R: dict, log) -> None:
    if "trainer" not in R:
        return
    log("")
    log("| images/s, batch 128, median of windows | " + " | ".join(R["trainer"]) + " |")
    log("|---|" + "---:|" * len(R["trainer"]))
    first = next(iter(R["trainer"]))
    for amp in R["trainer"][first]:
        label = {"auto": "reslab train(), amp auto (default), channels_last",
                 "bf16": "reslab train(), amp bf16 forced, channels_last (5-iteration windows)",
                 "off": "reslab train(), amp off, channels_last"}[amp]
        log(f"| {label} | " + " | ".join(f"{med(R['trainer'][m][amp]['rates']):.1f}" for m in R["trainer"]) + " |")
    log("| reference: DataLoader(2 workers) + eager fp32 NCHW | "
        + " | ".join(f"{med(R['reference'][m]['rates']):.1f}" for m in R["reference"]) + " |")
    ratio = {m: med(R["rounds"][m]) for m in R["trainer"]}
    log("| **ratio reslab (default) / reference**, median of per-round ratios (target >= 2.0x) | "
        + " | ".join(f"**{ratio[m]:.2f}x**" for m in ratio) + " |")
    log("| per-round ratios (ABBA order) | "
        + " | ".join(", ".join(f"{x:.2f}" for x in R["rounds"][m]) for m in ratio) + " |")
    for m in R["trainer"]:
        for amp, v in R["trainer"][m].items():
            log(f"  {m} amp={amp}: {spread(v['rates'])}; warm-up window {v['warmup']:.1f}")
        log(f"  {m} reference: {spread(R['reference'][m]['rates'])}")
    log("  target >= 2.0x: " + "; ".join(f"{m} {'met' if r >= 2 else 'NOT met'} ({r:.2f}x)" for m, r in ratio.items()))
    if R.get("ablation"):
        log("")
        log("| ResNet-20, one reslab setting undone | images/s | reslab default, neighbouring job | ratio |")
        log("|---|---:|---:|---:|")
        for name, v in R["ablation"].items():
            log(f"| {name} | {med(v['rates']):.1f} | {med(v['default_rates']):.1f} | {v['ratio']:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_args(ap)
    add_args(ap)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated models (default: resnet20,resnet56)")
    harness.standalone(__file__, JOBS, lambda args, R, log: run(args, R, log, tuple(args.models.split(","))),
                       report, ap)


if __name__ == "__main__":
    main()
