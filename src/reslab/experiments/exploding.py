"""Exploding gradients: layer-wise growth from weights with gain > 1, overflow from raw
pixels, and what BatchNorm + ReLU does to each, measured separately.

The argument (Pascanu et al. 2013; Glorot & Bengio 2010): backprop multiplies the gradient
by one factor per layer, ``‖∂L/∂h_{l-1}‖ ≈ c_l ‖∂L/∂h_l‖``; with factors above 1 it grows
geometrically toward the input.  For a ReLU net with He init (He et al. 2015) the factor of
the backpropagated gradient norm is about 1, and multiplying every weight by a gain g makes
it about g.  BatchNorm (Ioffe & Szegedy 2015) undoes any weight scale in the forward pass.

What is run (plain ReLU :func:`reslab.models.mlp.mlp` nets on flattened Fashion-MNIST; see
:mod:`reslab.experiments.fcnets` for the layer numbering), ``steps`` SGD steps each:

    =================  ======================  ===  ==========================
    condition          inputs                  BN   weights
    =================  ======================  ===  ==========================
    ``gain``           zero mean, unit std     no   He × ``layer_gain`` (1.5)
    ``gain+bn``        zero mean, unit std     yes  He × ``layer_gain``
    ``raw``            raw pixels, 0–255       no   He × ``init_gain`` (1)
    ``raw+bn``         raw pixels, 0–255       yes  He × ``init_gain``
    ``normalised``     zero mean, unit std     no   He × ``init_gain`` (context)
    ``normalised+bn``  zero mean, unit std     yes  He × ``init_gain`` (context)
    =================  ======================  ===  ==========================

    At step 0 (before any update) each Linear output's backpropagated gradient norm
    ‖∂L/∂h_l‖ (hooks) gives the layer-wise growth: a least-squares line through
    log10‖∂L/∂h_l‖ over l gives the per-layer factor toward the input, and the first/last
    ratio ‖∂L/∂h_0‖/‖∂L/∂h_depth‖ the total.  Every step records the loss and the total
    gradient norm; the first ``layer_steps`` steps and the last also each Linear weight's
    gradient norm and output RMS.  A non-finite value is caught, not raised: the run stops
    and records the step (= SGD updates before it), the pass (forward: an activation
    overflowed; loss; backward: a gradient did) and the first layer where it appeared.

Why these defaults
    SGD lr 0.01, momentum 0.9, batch 128, the vanishing experiment's recipe; gain 1.5 is a
    mild mis-scaling that gives 1.5^50 ≈ 6e8 over 50 layers.  Criteria (fixed here, before
    any run): growth counts when the fitted factor is > 1 at every depth and the first/last
    ratio reaches ``explode_factor`` (100) at the deepest; "tamed" means first/last within
    [1/``stable_factor``, ``stable_factor``] = [0.1, 10] and training finite; a raw run
    "explodes" if it turns non-finite or its gradient norm grows ``explode_factor``-fold.

Not hidden
    * The raw-pixel blow-up is not layer-wise gradient growth: at step 0 the per-layer
      gradients are level (He init balances them); the first SGD step, with gradients
      hundreds of times larger than on normalised inputs, enlarges every weight, and the
      next *forward* pass overflows.  It is judged as its own part.
    * In a net without BN, the *weight* gradients ‖∂L/∂W_l‖ = ‖∂L/∂h_l · a_{l-1}ᵀ‖ stay
      level even with gain > 1: the activations a_{l-1} grow forward by the factor the
      backpropagated gradient grows backward.  The growth is in ‖∂L/∂h_l‖.
    * BN does not give a level backward pass either: with BN + ReLU each layer multiplies
      the backpropagated gradient by about 1.2 at init (Yang et al. 2019, arXiv 1902.08129),
      so deep BN nets fail the "tamed" criterion; that part then fails, as measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.experiments import base, stats
from reslab.experiments.fcnets import (LayerOutputs, build_net, check_net_config, decades, floats, linears,
                                       load_flat, log_summary, normalise, num, weight_grad_norms)

CLAIM = ("Exploding gradients, in three parts: (1) when each layer's backward factor exceeds 1 (weights "
         "with gain > 1, no normalisation) the gradient grows geometrically layer by layer toward the input; "
         "(2) badly scaled inputs (raw 0-255 pixels) make training overflow to inf or NaN; (3) BatchNorm "
         "together with ReLU tames both: the per-layer gradient stays level and training stays finite. "
         "(Pascanu et al. 2013; Ioffe & Szegedy 2015.)")

# condition → (inputs, BN, which config field scales the weights)
CONDITIONS: dict[str, tuple[str, bool, str]] = {
    "gain": ("normalised", False, "layer_gain"),
    "gain+bn": ("normalised", True, "layer_gain"),
    "raw": ("raw", False, "init_gain"),
    "raw+bn": ("raw", True, "init_gain"),
    "normalised": ("normalised", False, "init_gain"),
    "normalised+bn": ("normalised", True, "init_gain"),
}
REQUIRED = ("gain", "gain+bn", "raw", "raw+bn")  # the conditions the criteria are about

SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=3, depths=(10, 20, 50), n_images=2048, steps=20),
    "full": dict(seeds=5, depths=(5, 10, 20, 50, 100), n_images=10000, steps=200),
}


@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    seeds: int = 3                      # seeds 0..seeds-1: init and batch order
    threads: int | None = 1             # tiny nets: one torch thread (see base.torch_threads)
    depths: tuple[int, ...] = (10, 20, 50)  # hidden layers (ReLUs); depth + 1 Linear layers
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    width: int = 200                    # hidden units per layer
    init_gain: float = 1.0              # × He init's std for the raw/normalised conditions
    layer_gain: float = 1.5             # × He init's std for the gain conditions: must be > 1
    dataset: str = "fashion-mnist"      # fashion-mnist | synthetic
    n_images: int = 2048                # training slice: the first n_images of the train split
    batch: int = 128                    # images per SGD step
    steps: int = 20                     # SGD steps at most (iterations, not epochs)
    lr: float = 0.01                    # per batch of `batch` images
    momentum: float = 0.9
    explode_factor: float = 100.0       # growth (over layers, or over steps) that counts as exploding
    stable_factor: float = 10.0         # first/last within [1/this, this]; step growth ≤ this: stable
    layer_steps: int = 5                # per-layer norms are kept for steps 0..layer_steps-1 and the last

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        super().__post_init__()
        check_net_config(self)
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ReslabError(f"unknown condition(s) {bad}; valid: {', '.join(CONDITIONS)}")
        if self.steps < 1:
            raise ReslabError(f"steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.layer_gain) and self.layer_gain > 0):
            raise ReslabError(f"layer_gain must be a finite number > 0, got {self.layer_gain}")
        if not 1 <= self.stable_factor <= self.explode_factor:
            raise ReslabError(f"need 1 <= stable_factor <= explode_factor, got {self.stable_factor}, "
                              f"{self.explode_factor}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "exploding", scale, seeds, overrides)


# ---------------------------------------------------------------- one training run

def train(cfg: Config, condition: str, depth: int, seed: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Up to ``cfg.steps`` SGD steps; stops at the first non-finite activation, loss or gradient.
    ``x`` are the inputs the condition asks for (raw or normalised)."""
    _, bn, gain_field = CONDITIONS[condition]
    torch.manual_seed(seed)
    net = build_net(depth, "relu+bn" if bn else "relu", cfg.width, x.shape[1], 10, getattr(cfg, gain_field))
    net.train()
    layers = linears(net)
    names = {id(m): n for n, m in net.named_modules()}
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    rec: dict[str, Any] = {"loss": [], "grad_norm": [], "nonfinite": None, "act_grad0": None,
                           "layers": {"step": [], "grad": [], "act_rms": []}, "n_layers": len(layers)}

    def stop(step, phase, i):
        rec["nonfinite"] = {"step": step, "phase": phase, "layer": None if i is None else i + 1,
                            "layer_name": None if i is None else names[id(layers[i])]}

    with LayerOutputs(layers, retain_grad=True) as outs:
        grads: list = []
        for step in range(cfg.steps):
            idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
            outs.clear()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            rms = outs.rms()
            rec["loss"].append(loss.item())
            bad_fwd = [i for i, o in enumerate(outs.outputs) if not torch.isfinite(o).all()]
            if bad_fwd or not math.isfinite(loss.item()):
                rec["grad_norm"].append(None)
                stop(step, "forward" if bad_fwd else "loss", bad_fwd[0] if bad_fwd else None)
                _keep_layers(rec, step, [None] * len(layers), rms)
                break
            loss.backward()
            if step == 0:
                rec["act_grad0"] = outs.grad_norms()
            grads = weight_grad_norms(net)
            total = math.sqrt(sum(p.grad.detach().double().pow(2).sum().item()
                                  for p in net.parameters() if p.grad is not None))
            rec["grad_norm"].append(total)
            if step < cfg.layer_steps:
                _keep_layers(rec, step, grads, rms)
            if not math.isfinite(total):
                bad = [i for i, g in enumerate(grads) if not math.isfinite(g)]
                stop(step, "backward", bad[-1] if bad else None)  # backward runs output → input
                if step >= cfg.layer_steps:
                    _keep_layers(rec, step, grads, rms)
                break
            opt.step()
        else:
            if cfg.steps - 1 >= cfg.layer_steps:
                _keep_layers(rec, cfg.steps - 1, grads, rms)
    return rec


def _keep_layers(rec: dict, step: int, grads: list, rms: list) -> None:
    rec["layers"]["step"].append(step)
    rec["layers"]["grad"].append(list(grads))
    rec["layers"]["act_rms"].append(list(rms))


# ---------------------------------------------------------------- the experiment

def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    start = time.perf_counter()
    x_raw, y = load_flat(cfg.dataset, cfg.n_images, ctx.data_dir)
    inputs = {"raw": x_raw, "normalised": normalise(x_raw)}
    runs: dict[str, dict[str, list]] = {}
    for cond in cfg.conditions:
        runs[cond] = {}
        for depth in cfg.depths:
            t = time.perf_counter()
            recs = [train(cfg, cond, depth, s, inputs[CONDITIONS[cond][0]], y) for s in range(cfg.seeds)]
            runs[cond][str(depth)] = recs
            nf = [r["nonfinite"]["step"] for r in recs if r["nonfinite"]]
            ctx.say(f"exploding: {cond:14s} depth {depth:3d}: step-0 first/last ‖∂L/∂h‖ "
                    f"{decades(log_summary([layer_growth(r)['ratio'] for r in recs]))}; "
                    + (f"non-finite at step(s) {nf}" if nf else f"finite for {cfg.steps} steps")
                    + f" ({time.perf_counter() - t:.1f}s)")
    data = {"runs": runs, "input_stats": {"raw_mean": x_raw.mean().item(), "raw_std": x_raw.std().item()},
            "setup": f"plain ReLU mlp nets on flattened {cfg.dataset} (first {cfg.n_images} train images), "
                     f"SGD lr {cfg.lr} momentum {cfg.momentum} batch {cfg.batch}, up to {cfg.steps} steps; "
                     f"layer-wise growth = ‖∂L/∂h_l‖ of each Linear output at step 0"}
    scope = {"data": f"{cfg.dataset}, first {cfg.n_images} training images (raw 0-255 or normalised)",
             "budget": f"depths {', '.join(map(str, cfg.depths))}; width {cfg.width}; up to {cfg.steps} SGD "
                       f"steps (lr {cfg.lr}, batch {cfg.batch}); gain conditions: weights × {cfg.layer_gain:g}"}
    return base.make_results("exploding", CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - start,
                             scope=scope)


def layer_growth(rec: dict) -> dict[str, float]:
    """Step-0 growth of ‖∂L/∂h_l‖ toward the input: ``ratio`` first/last, and ``factor`` per
    layer from a least-squares line through log10‖∂L/∂h_l‖ over l (NaN if not measured)."""
    g = floats(rec.get("act_grad0") or [])
    if g.size < 2 or not np.all(np.isfinite(g) & (g > 0)):
        return {"ratio": float("nan"), "factor": float("nan")}
    slope = np.polyfit(np.arange(g.size), np.log10(g), 1)[0]
    return {"ratio": float(g[0] / g[-1]), "factor": float(10 ** -slope)}


def weight_ratio0(rec: dict) -> float:
    """First/last Linear weight-gradient norm at step 0 (NaN if not recorded)."""
    if not rec["layers"]["step"] or rec["layers"]["step"][0] != 0:
        return float("nan")
    g = floats(rec["layers"]["grad"][0])
    return float(g[0] / g[-1]) if g[-1] > 0 else float("nan")


def max_finite(rec: dict) -> float:
    """The largest finite total gradient norm of a run (NaN if none)."""
    g = floats(rec["grad_norm"])
    g = g[np.isfinite(g)]
    return float(g.max()) if g.size else float("nan")


def growth(rec: dict) -> float:
    """Largest finite gradient norm over the first step's."""
    g0 = num(rec["grad_norm"][0]) if rec["grad_norm"] else float("nan")
    return max_finite(rec) / g0 if math.isfinite(g0) and g0 > 0 else float("nan")


def where(rec: dict) -> str | None:
    """Where a run first turned non-finite, as text (None if it never did)."""
    nf = rec["nonfinite"]
    if nf is None:
        return None
    if nf["layer"] is None:  # the loss overflowed although every layer's output was finite
        return f"step {nf['step']}, {nf['phase']} (every layer finite)"
    return f"step {nf['step']}, {nf['phase']} pass at layer {nf['layer']}/{rec['n_layers']}"


# ---------------------------------------------------------------- judgement

def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    """Four parts, each with a criterion fixed here; see :data:`CLAIM`."""
    missing = [c for c in REQUIRED if c not in cfg.conditions]
    if missing:
        return base.cannot_judge(f"conditions {missing} were not run; the criteria need {list(REQUIRED)}")
    if not cfg.layer_gain > 1:
        return base.cannot_judge(f"layer_gain is {cfg.layer_gain:g}; the layer-wise growth part needs a gain > 1")
    runs = data["runs"]
    parts = [_part_growth(cfg, runs), _part_raw(cfg, runs), _part_bn_level(cfg, runs), _part_raw_bn(cfg, runs)]
    return base.verdict(parts, _summary(cfg, runs), **_numbers(cfg, runs))


def _part_growth(cfg: Config, runs: dict) -> dict[str, Any]:
    """1. gain > 1, no BN: ‖∂L/∂h_l‖ grows toward the input."""
    deepest = str(max(cfg.depths))
    grow = {d: [layer_growth(r) for r in runs["gain"][str(d)]] for d in map(str, cfg.depths)}
    ok = (all(g["factor"] > 1 for gs in grow.values() for g in gs)  # NaN fails
          and all(g["ratio"] >= cfg.explode_factor for g in grow[deepest]))
    return base.part(
        f"without BN, weights with gain {cfg.layer_gain:g} > 1 make the gradient grow geometrically layer by "
        "layer toward the input",
        f"at step 0, in every seed and depth, the per-layer factor of ‖∂L/∂h_l‖ toward the input (log-linear "
        f"fit) is > 1, and at the deepest depth ‖∂L/∂h_0‖/‖∂L/∂h_L‖ ≥ {cfg.explode_factor:g} in every seed",
        ok, "; ".join(f"L={d}: factor {_factor(gs)} (expected about the gain, {cfg.layer_gain:g}), first/last "
                      f"{decades(log_summary([g['ratio'] for g in gs]))}, weight gradients first/last "
                      f"{_geo([weight_ratio0(r) for r in runs['gain'][d]])}, training: {_outcome(runs['gain'][d])}"
                      for d, gs in grow.items()))


def _part_raw(cfg: Config, runs: dict) -> dict[str, Any]:
    """2. raw 0-255 pixels, no BN: training overflows (or the gradient norm explodes)."""
    def explodes(r):
        return r["nonfinite"] is not None or growth(r) >= cfg.explode_factor

    raw = runs["raw"]
    return base.part(
        "raw 0-255 inputs without BN: a few SGD steps overflow to inf/NaN",
        f"in every seed and depth, the run turns non-finite within {cfg.steps} SGD steps or its total gradient "
        f"norm reaches {cfg.explode_factor:g}× its step-0 value",
        all(explodes(r) for d in cfg.depths for r in raw[str(d)]),
        "; ".join(f"L={d}: {_outcome(raw[str(d)])}; step-0 per-layer factor {_factor(map(layer_growth, raw[str(d)]))}"
                  for d in cfg.depths))


def _part_bn_level(cfg: Config, runs: dict) -> dict[str, Any]:
    """3. BN + ReLU, same gain: the per-layer gradient stays level, training finite."""
    lo, hi = 1 / cfg.stable_factor, cfg.stable_factor
    bn = runs["gain+bn"]
    ratios = {d: [layer_growth(r)["ratio"] for r in bn[str(d)]] for d in cfg.depths}
    ok = (all(lo <= v <= hi for vs in ratios.values() for v in vs)
          and all(r["nonfinite"] is None for d in cfg.depths for r in bn[str(d)]))
    return base.part(
        f"BN + ReLU (same gain {cfg.layer_gain:g}) keeps the layer-wise gradient level and training finite",
        f"in every seed and depth, at step 0 ‖∂L/∂h_0‖/‖∂L/∂h_L‖ within [{lo:g}, {hi:g}], and finite for "
        f"{cfg.steps} SGD steps",
        ok, "; ".join(f"L={d}: first/last {decades(log_summary(ratios[d]))}, factor "
                      f"{_factor(map(layer_growth, bn[str(d)]))}, {_outcome(bn[str(d)])}" for d in cfg.depths))


def _part_raw_bn(cfg: Config, runs: dict) -> dict[str, Any]:
    """4. BN + ReLU on the same raw inputs: finite and stable over the steps."""
    rbn = runs["raw+bn"]
    return base.part(
        "BN + ReLU keeps training on raw 0-255 inputs finite",
        f"in every seed and depth, finite for {cfg.steps} SGD steps with total gradient norm ≤ "
        f"{cfg.stable_factor:g}× its step-0 value",
        all(r["nonfinite"] is None and growth(r) <= cfg.stable_factor for d in cfg.depths for r in rbn[str(d)]),
        "; ".join(f"L={d}: {_outcome(rbn[str(d)])}" for d in cfg.depths))


def _summary(cfg: Config, runs: dict) -> str:
    """The verdict's summary: the deepest nets' step-0 growth and raw-input outcomes, then the context."""
    deepest = str(max(cfg.depths))
    context = [c for c in ("normalised", "normalised+bn") if c in cfg.conditions]
    deep = {c: [layer_growth(r) for r in runs[c][deepest]] for c in ("gain", "gain+bn")}
    return (f"{cfg.seeds} seeds, up to {cfg.steps} SGD steps. At L={deepest}, step 0: without BN (gain "
            f"{cfg.layer_gain:g}) ‖∂L/∂h_0‖/‖∂L/∂h_L‖ = {_geo([g['ratio'] for g in deep['gain']])} "
            f"(factor {_factor(deep['gain'])} per layer); with BN {_geo([g['ratio'] for g in deep['gain+bn']])} "
            f"(factor {_factor(deep['gain+bn'])}). Raw 0-255 inputs without BN: {_outcome(runs['raw'][deepest])}; "
            f"with BN: {_outcome(runs['raw+bn'][deepest])}."
            + "".join(f" Context, {c} (gain {cfg.init_gain:g}): "
                      + "; ".join(f"L={d} step-0 first/last ‖∂L/∂h‖ "
                                  f"{_geo([layer_growth(r)['ratio'] for r in runs[c][str(d)]])}, "
                                  f"{_outcome(runs[c][str(d)])}" for d in cfg.depths) + "."
                      for c in context))


def _numbers(cfg: Config, runs: dict) -> dict[str, Any]:
    """The verdict's numbers: per condition and depth, each seed's outcome and step-0 growth."""
    return {cond: {str(d): {"nonfinite_step": [r["nonfinite"]["step"] if r["nonfinite"] else None
                                               for r in runs[cond][str(d)]],
                            "grad_norm_step0": [num(r["grad_norm"][0]) if r["grad_norm"] else None
                                                for r in runs[cond][str(d)]],
                            "growth_max_over_step0": [growth(r) for r in runs[cond][str(d)]],
                            "layer_ratio_step0": [layer_growth(r)["ratio"] for r in runs[cond][str(d)]],
                            "layer_factor_step0": [layer_growth(r)["factor"] for r in runs[cond][str(d)]]}
                    for d in cfg.depths} for cond in cfg.conditions}

def _geo(values) -> str:
    g = log_summary(values)["geo"]
    return "n/a" if g is None else f"{g:.2g}"


def _factor(growths) -> str:
    return stats.text(stats.summary([g["factor"] for g in growths]), ".2f")


def _outcome(recs: list[dict]) -> str:
    """Training outcome of a condition's seeds, as text."""
    bad = [where(r) for r in recs if r["nonfinite"]]
    if bad:
        return f"non-finite in {len(bad)}/{len(recs)} seeds (first: {bad[0]})"
    return f"finite, gradient norm up to {max(growth(r) for r in recs):.2g}× step 0"
