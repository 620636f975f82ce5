"""Exploding gradients: badly scaled inputs (or weights) make activations and gradients
grow layer by layer until they overflow to inf or NaN; BatchNorm with ReLU tames this.

What is run
    Deep plain ReLU nets, :func:`reslab.models.mlp.mlp` on flattened Fashion-MNIST (the
    vanishing experiment's nets), trained with SGD for ``steps`` steps in four conditions:

    ==================  ======================  =========
    condition           inputs                  BN
    ==================  ======================  =========
    ``raw``             raw pixels, 0–255       no
    ``normalised``      zero mean, unit std     no
    ``raw+bn``          raw pixels, 0–255       yes
    ``normalised+bn``   zero mean, unit std     yes
    ==================  ======================  =========

    The claim compares ``raw`` with ``normalised+bn``; the other two show which of the
    two fixes does the work.  Every step records the loss, the total gradient norm, and
    (for the first ``layer_steps`` steps and the last) each Linear layer's weight-gradient
    norm and output RMS.  A non-finite value is caught, not raised: the run stops and
    records the step (= number of SGD updates before it), the pass (forward: an
    activation overflowed; loss; backward: a gradient did) and the first layer where it
    appeared (forward order in the forward pass, backward order in the backward pass).

Why these defaults
    He init (``init_gain`` 1), SGD lr 0.01, momentum 0.9, batch 128: the same ordinary
    recipe as the vanishing experiment, *no* larger init or learning rate.  Raw pixels
    alone are enough: they make the first gradients hundreds of times those of
    normalised inputs, one SGD step then enlarges every layer's weights, the activations
    grow by a factor per layer, and their product overflows float32 within a few steps;
    the gradient norm reached just before the overflow grows with depth.
    ``init_gain`` > 1 and a larger ``lr`` are there to explore, and are saved with the run.
    Thresholds: a run "explodes" if it turns non-finite within ``steps`` or its gradient
    norm grows by ``explode_factor`` over its first step's; it is "stable" if finite
    throughout and its gradient norm never exceeds ``stable_factor`` × its first step's.

Not hidden: at initialisation, He init keeps a ReLU net's per-layer weight-gradient norms
about level across layers (the net is balanced), so the growth is over *steps* (and in
the activations, layer by layer), not visible across layers at step 0.  And a deep BN net
starts with large first-layer gradients (see the vanishing experiment) yet stays finite.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.experiments import base
from reslab.experiments.fcnets import (build_net, floats, linears, load_flat, normalise, num, save_figure,
                                       torch_threads, weight_grad_norms)
from reslab.experiments.vanishing import check_common

CLAIM = ("Badly normalised inputs or weights make gradients grow layer by layer until they overflow "
         "to inf or NaN; BatchNorm together with ReLU tames this (reslab DESIGN item 3; e.g. "
         "Pascanu et al. 2013, Ioffe & Szegedy 2015).")

CONDITIONS = ("raw", "normalised", "raw+bn", "normalised+bn")

SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=3, depths=(10, 20, 50), n_images=2048, steps=20),
    "full": dict(seeds=5, depths=(5, 10, 20, 50, 100), n_images=10000, steps=200),
}


@dataclass(frozen=True)
class Config:
    scale: str = "quick"
    seeds: int = 3                      # seeds 0..seeds-1: init and batch order
    depths: tuple[int, ...] = (10, 20, 50)  # hidden layers (ReLUs); depth + 1 Linear layers
    conditions: tuple[str, ...] = CONDITIONS
    width: int = 200                    # hidden units per layer
    init_gain: float = 1.0              # × He init's std, sqrt(2/fan_in), for every Linear weight
    dataset: str = "fashion-mnist"      # fashion-mnist | synthetic
    data_dir: str | None = None         # where the dataset files are (None: reslab.data's search order)
    n_images: int = 2048                # training slice: the first n_images of the train split
    batch: int = 128                    # images per SGD step
    steps: int = 20                     # SGD steps at most (iterations, not epochs)
    lr: float = 0.01                    # per batch of `batch` images
    momentum: float = 0.9
    explode_factor: float = 100.0       # growth of the gradient norm over step 0 that counts as exploding
    stable_factor: float = 10.0         # largest growth over step 0 that still counts as stable
    layer_steps: int = 5                # per-layer norms are kept for steps 0..layer_steps-1 and the last
    threads: int = 1                    # torch CPU threads during the run (see fcnets.torch_threads)

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        if self.scale not in SCALES:
            raise ReslabError(f"unknown scale {self.scale!r}; valid: {', '.join(SCALES)}")
        check_common(self)  # seeds, depths, init_gain, dataset, sizes, threads, optimiser
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ReslabError(f"unknown condition(s) {bad}; valid: {', '.join(CONDITIONS)}")
        if self.steps < 1:
            raise ReslabError(f"steps must be >= 1, got {self.steps}")
        if not 1 <= self.stable_factor <= self.explode_factor:
            raise ReslabError(f"need 1 <= stable_factor <= explode_factor, got {self.stable_factor}, "
                              f"{self.explode_factor}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "exploding", scale, seeds, overrides)


# ---------------------------------------------------------------- one training run

def _finite(v: float) -> bool:
    return math.isfinite(v)


def train(cfg: Config, condition: str, depth: int, seed: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Up to ``cfg.steps`` SGD steps; stops at the first non-finite activation, loss or gradient."""
    torch.manual_seed(seed)
    net = build_net(depth, "relu+bn" if condition.endswith("+bn") else "relu", cfg.width, x.shape[1], 10,
                    cfg.init_gain)
    net.train()
    layers = linears(net)
    names = {id(m): n for n, m in net.named_modules()}
    acts: list[torch.Tensor] = []
    handles = [m.register_forward_hook(_Recorder(acts)) for m in layers]
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    rec: dict[str, Any] = {"loss": [], "grad_norm": [], "nonfinite": None,
                           "layers": {"step": [], "grad": [], "act_rms": []}}
    try:
        for step in range(cfg.steps):
            idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
            acts.clear()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            rms = [a.double().pow(2).mean().sqrt().item() for a in acts]
            rec["loss"].append(loss.item())
            bad_fwd = [i for i, a in enumerate(acts) if not torch.isfinite(a).all()]
            if bad_fwd or not _finite(loss.item()):
                i = bad_fwd[0] if bad_fwd else None
                rec["grad_norm"].append(None)
                rec["nonfinite"] = {"step": step, "phase": "forward" if bad_fwd else "loss",
                                    "layer": None if i is None else i + 1,
                                    "layer_name": None if i is None else names[id(layers[i])]}
                _keep_layers(rec, step, [None] * len(layers), rms)
                break
            loss.backward()
            grads = weight_grad_norms(net)
            total = math.sqrt(sum(p.grad.detach().double().pow(2).sum().item()
                                  for p in net.parameters() if p.grad is not None))
            rec["grad_norm"].append(total)
            if step < cfg.layer_steps:
                _keep_layers(rec, step, grads, rms)
            if not _finite(total):
                bad = [i for i, g in enumerate(grads) if not _finite(g)]
                i = bad[-1] if bad else None  # backward runs output → input: its first is the last index
                rec["nonfinite"] = {"step": step, "phase": "backward", "layer": None if i is None else i + 1,
                                    "layer_name": None if i is None else names[id(layers[i])]}
                if step >= cfg.layer_steps:
                    _keep_layers(rec, step, grads, rms)
                break
            opt.step()
        else:
            if cfg.steps - 1 >= cfg.layer_steps:
                _keep_layers(rec, cfg.steps - 1, grads, rms)
    finally:
        for h in handles:
            h.remove()
    rec["n_layers"] = len(layers)
    return rec


class _Recorder:
    """A forward hook that keeps each Linear layer's output (a named class, not a lambda)."""

    def __init__(self, store: list):
        self.store = store

    def __call__(self, module, inputs, output):
        self.store.append(output.detach())


def _keep_layers(rec: dict, step: int, grads: list, rms: list) -> None:
    rec["layers"]["step"].append(step)
    rec["layers"]["grad"].append(list(grads))
    rec["layers"]["act_rms"].append(list(rms))


# ---------------------------------------------------------------- the experiment

def run(cfg: Config, progress: base.Progress | None = None) -> dict[str, Any]:
    with torch_threads(cfg.threads):
        return _run(cfg, progress)


def _run(cfg: Config, progress: base.Progress | None) -> dict[str, Any]:
    start = time.perf_counter()
    say = progress or (lambda msg: None)
    x_raw, y = load_flat(cfg.dataset, cfg.n_images, cfg.data_dir)
    inputs = {"raw": x_raw, "normalised": normalise(x_raw)}
    runs: dict[str, dict[str, list]] = {}
    for cond in cfg.conditions:
        runs[cond] = {}
        x = inputs[cond.removesuffix("+bn")]
        for depth in cfg.depths:
            t = time.perf_counter()
            runs[cond][str(depth)] = [train(cfg, cond, depth, s, x, y) for s in range(cfg.seeds)]
            nf = [r["nonfinite"]["step"] for r in runs[cond][str(depth)] if r["nonfinite"]]
            say(f"exploding: {cond:14s} depth {depth:3d}: "
                + (f"non-finite at step(s) {nf}" if nf else f"finite for {cfg.steps} steps")
                + f" ({time.perf_counter() - t:.1f}s, {cfg.seeds} seeds)")
    data = {"runs": runs, "input_stats": {"raw_mean": x_raw.mean().item(), "raw_std": x_raw.std().item()},
            "setup": f"plain ReLU mlp nets on flattened {cfg.dataset} (first {cfg.n_images} train images), "
                     f"SGD lr {cfg.lr} momentum {cfg.momentum} batch {cfg.batch}, up to {cfg.steps} steps"}
    return base.make_results("exploding", CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - start)


def max_finite(rec: dict) -> float:
    """The largest finite total gradient norm of a run (NaN if none)."""
    g = floats(rec["grad_norm"])
    g = g[np.isfinite(g)]
    return float(g.max()) if g.size else float("nan")


def growth(rec: dict) -> float:
    """Largest finite gradient norm over the first step's."""
    g0 = num(rec["grad_norm"][0]) if rec["grad_norm"] else float("nan")
    return max_finite(rec) / g0 if math.isfinite(g0) and g0 > 0 else float("nan")


def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    runs = data["runs"]
    missing = [c for c in ("raw", "normalised+bn") if c not in cfg.conditions]
    if missing:
        return base.verdict(False, f"cannot judge: conditions {missing} were not run")
    numbers: dict[str, Any] = {}
    for cond in cfg.conditions:
        for d in cfg.depths:
            recs = runs[cond][str(d)]
            row = {"nonfinite_step": [r["nonfinite"]["step"] if r["nonfinite"] else None for r in recs],
                   "grad_norm_step0": [num(r["grad_norm"][0]) if r["grad_norm"] else None for r in recs],
                   "growth_max_over_step0": [growth(r) for r in recs]}
            if any(r["nonfinite"] for r in recs):
                row["first_nonfinite"] = [where(r) for r in recs]
            numbers.setdefault(cond, {})[str(d)] = row

    def explodes(r):
        return r["nonfinite"] is not None or growth(r) >= cfg.explode_factor

    def stable(r):
        return r["nonfinite"] is None and growth(r) <= cfg.stable_factor

    raw_ok = all(explodes(r) for d in cfg.depths for r in runs["raw"][str(d)])
    bn_ok = all(stable(r) for d in cfg.depths for r in runs["normalised+bn"][str(d)])
    parts = [f"raw pixels, no BN: {_describe(cfg, runs['raw'])}",
             f"normalised + BN: {_describe(cfg, runs['normalised+bn'])}"]
    others = [c for c in cfg.conditions if c not in ("raw", "normalised+bn")]
    if others:
        parts += [f"{c} (context): {_describe(cfg, runs[c])}" for c in others]
    summary = (f"{cfg.seeds} seeds, up to {cfg.steps} SGD steps. " + ". ".join(parts)
               + f". Criterion: raw explodes (non-finite, or grad norm x{cfg.explode_factor:g}) in every run; "
               f"normalised+BN finite with grad norm <= x{cfg.stable_factor:g} its first step's in every run.")
    return base.verdict(raw_ok and bn_ok, summary, **numbers)


def _describe(cfg: Config, by_depth: dict[str, list]) -> str:
    out = []
    for d in cfg.depths:
        recs = by_depth[str(d)]
        g0 = np.exp(np.mean(np.log([num(r["grad_norm"][0]) for r in recs])))
        bad = [r["nonfinite"] for r in recs if r["nonfinite"]]
        if bad:
            steps = sorted(b["step"] for b in bad)
            first = next(i for i, r in enumerate(recs) if r["nonfinite"])
            top = np.nanmax([max_finite(r) for r in recs])
            text = (f"depth {d}: non-finite in {len(bad)}/{len(recs)} seeds at step {_span(steps)} "
                    f"(seed {first}: {where(recs[first])}), "
                    f"grad norm {g0:.1e} at step 0, up to {top:.1e} before")
        else:
            gmax = max(growth(r) for r in recs)
            text = f"depth {d}: finite, grad norm at step 0 {g0:.1e}, max growth x{gmax:.2g}"
        out.append(text)
    return "; ".join(out)


def where(rec: dict) -> str | None:
    """Where a run first turned non-finite, as text (None if it never did)."""
    nf = rec["nonfinite"]
    if nf is None:
        return None
    if nf["layer"] is None:  # the loss overflowed although every layer's output was finite
        return f"{nf['phase']} (every layer finite)"
    return f"{nf['phase']} pass at layer {nf['layer']}/{rec['n_layers']}"


def _span(steps: list[int]) -> str:
    return str(steps[0]) if steps[0] == steps[-1] else f"{steps[0]}-{steps[-1]}"


# ---------------------------------------------------------------- figures

COLOURS = {"raw": "tab:red", "normalised": "tab:orange", "raw+bn": "tab:purple", "normalised+bn": "tab:blue"}


def plot(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg, runs = results["config"], results["data"]["runs"]
    depths, conds = [int(d) for d in cfg["depths"]], list(cfg["conditions"])
    paths = []

    # 1. total gradient norm per step; X = the step where the run turned non-finite
    fig, axes = plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 3.8), squeeze=False)
    top = np.nanmax([max_finite(r) for c in conds for d in depths for r in runs[c][str(d)]] + [1.0])
    for ax, d in zip(axes[0], depths):
        for c in conds:
            for i, r in enumerate(runs[c][str(d)]):
                g = floats(r["grad_norm"])
                ax.semilogy(np.arange(len(g)), np.where(np.isfinite(g), g, np.nan), "-", lw=1,
                            color=COLOURS[c], label=c if i == 0 else None)
                if r["nonfinite"]:
                    ax.plot([r["nonfinite"]["step"]], [top * 10], "X", color=COLOURS[c], ms=9)
        ax.set(title=f"depth {d}  (X: non-finite)", xlabel="SGD step")
    axes[0][0].set_ylabel("total gradient norm")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "exploding_steps.png"))

    # 2. per layer, seed 0: weight-gradient norm and output RMS at the recorded steps
    fig, axes = plt.subplots(len(depths), 2, figsize=(11, 3.4 * len(depths)), squeeze=False)
    for row, d in enumerate(depths):
        for c in [c for c in ("raw", "normalised+bn") if c in conds]:
            r = runs[c][str(d)][0]
            lay = r["layers"]
            keep = range(len(lay["step"])) if c == "raw" else sorted({0, len(lay["step"]) - 1})
            shades = plt.get_cmap("Reds" if c == "raw" else "Blues")(np.linspace(0.4, 1, len(keep)))
            for shade, k in zip(shades, keep):
                step = lay["step"][k]
                for col, key in enumerate(("grad", "act_rms")):
                    v = floats(lay[key][k])
                    axes[row][col].semilogy(np.arange(1, len(v) + 1), np.where(np.isfinite(v), v, np.nan),
                                            "-o", ms=2, color=shade, label=f"{c}, step {step}")
            if r["nonfinite"] and r["nonfinite"]["layer"]:
                for ax in axes[row]:
                    ax.axvline(r["nonfinite"]["layer"], color="tab:red", ls=":")
        axes[row][0].set(title=f"depth {d}, seed 0: ‖∂loss/∂W‖ per layer", xlabel="Linear layer (input → output)")
        axes[row][1].set(title=f"depth {d}, seed 0: layer output RMS (dotted: first non-finite)",
                         xlabel="Linear layer (input → output)")
        axes[row][1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "exploding_layers.png"))
    return paths
