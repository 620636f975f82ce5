"""Exploding gradients: layer-wise growth from weights with gain > 1, overflow from raw
pixels, and what BatchNorm + ReLU does to each, measured separately.

The argument (Pascanu et al. 2013; Glorot & Bengio 2010): backprop multiplies the gradient
by one factor per layer, ``‖∂L/∂h_{l-1}‖ ≈ c_l ‖∂L/∂h_l‖``; with factors above 1 it grows
geometrically toward the input.  For a ReLU net with He init (He et al. 2015) the factor of
the backpropagated gradient norm is about 1, and multiplying every weight by a gain g makes
it about g.  BatchNorm (Ioffe & Szegedy 2015, §3.3) makes back-propagation through a layer
independent of the scale of its weights.

What is run (:mod:`reslab.experiments.exploding_train`; plain ReLU :func:`reslab.models.mlp.mlp`
nets on flattened Fashion-MNIST, see :mod:`reslab.experiments.fcnets` for the layer
numbering), ``steps`` SGD steps each, the same seed giving every condition the same weights
(up to the gain) and the same batches:

    =================  ======================  ===  ==========================
    condition          inputs                  BN   weights
    =================  ======================  ===  ==========================
    ``gain``           zero mean, unit std     no   He × ``layer_gain`` (1.5)
    ``gain+bn``        zero mean, unit std     yes  He × ``layer_gain``
    ``raw``            raw pixels, 0–255       no   He × ``init_gain`` (1)
    ``raw+bn``         raw pixels, 0–255       yes  He × ``init_gain``
    ``normalised``     zero mean, unit std     no   He × ``init_gain``
    ``normalised+bn``  zero mean, unit std     yes  He × ``init_gain``
    =================  ======================  ===  ==========================

    At step 0 each Linear output's backpropagated gradient norm ‖∂L/∂h_l‖ (hooks); a
    least-squares line through log10‖∂L/∂h_l‖ over l gives the per-layer factor toward the
    input.  Every step: the loss, the total gradient norm, and each SGD update's size
    relative to the weights (‖ΔW_l‖/‖W_l‖); the first ``layer_steps`` steps and the last also
    each Linear's weight-gradient norm and output RMS.  A non-finite value is caught, not
    raised: the run stops and records the step, the pass and the first layer where it appeared.

The verdict (:mod:`reslab.experiments.exploding_judge`)
    Parts: without BN the per-layer factor equals the gain (±``gain_tolerance`` = 5%;
    Pascanu et al.'s layer-wise mechanism); the seed article's raw-pixel chain in three links,
    the first-layer gradient against normalised inputs (≥ ``raw_gradient_factor`` = 10×),
    an SGD update larger than the weights (‖ΔW_0‖/‖W_0‖ ≥ ``oversize_update`` = 1), then the
    overflow to inf/NaN, located; with BN the first/last ratio at gain 1.5 equals gain 1's
    (±``invariance_tolerance`` = 5%, Ioffe & Szegedy §3.3); and BN + ReLU keeps both the
    gain-1.5 and the raw-input runs finite with a level gradient norm.  Check: every
    non-finite value is caught and located.  Findings: with BN the gradient still grows at
    init by Yang et al. 2019's √(π/(π−1)) ≈ 1.21 per layer, whatever the gain; with BN, raw
    inputs backpropagate like normalised ones past the first layer; without BN the *weight*
    gradients stay level at gain 1.5 (the activations grow forward as ‖∂L/∂h_l‖ grows back).

Why these defaults
    SGD lr 0.01, momentum 0.9, batch 128, the vanishing experiment's recipe; gain 1.5 is a
    mild mis-scaling that gives 1.5^50 ≈ 6e8 over 50 layers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from reslab.errors import ReslabError
from reslab.experiments import base, stats
from reslab.experiments import exploding_judge as ej
from reslab.experiments.exploding_train import CONDITIONS, growth, layer_growth, train
from reslab.experiments.fcnets import check_net_config, decades, load_flat, log_summary, normalise, num

NAME = "exploding"
TITLE = "Exploding gradients"
IN_REPRODUCE = True
ORDER = 20
HELP = 'exploding gradients: layer-wise growth with gain > 1, raw-pixel overflow, BN + ReLU'
DESCRIPTION = ("Deep plain ReLU nets on flattened Fashion-MNIST: the backpropagated gradient per layer "
               "at step 0 with weights x gain > 1 (without and with BN), and SGD runs on raw 0-255 or "
               "normalised inputs, with or without BN, catching the step, pass and layer where values "
               "turn non-finite.  Quick scale: about 20 s on one CPU thread.")
CLAIM = ("Exploding gradients: when each layer multiplies the gradient by more than 1 (weights with gain > 1, "
         "no normalisation) it grows geometrically layer by layer toward the input (Pascanu et al. 2013); "
         "exploding gradients occur \"when your data was not normalized properly, after which during "
         "optimization gradients become very large … possibly larger than the maximum values for the data "
         "type … NaN\" (the seed article); and \"Batch Normalization combined with ReLU resolves the vanishing "
         "and exploding gradients problems to a large extent\" (the seed article), back-propagation through a "
         "BN layer being unaffected by the scale of its weights (Ioffe & Szegedy 2015, §3.3).")

REQUIRED = tuple(CONDITIONS)  # every condition: the raw and BN parts compare against the normalised ones

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
    gain_tolerance: float = 0.05        # no BN: per-layer factor equals the gain within ± this
    raw_gradient_factor: float = 10.0   # raw/normalised first-layer gradient at step 0 ≥ this: "very large"
    oversize_update: float = 1.0        # an update ‖ΔW_0‖/‖W_0‖ ≥ this: larger than the weights
    invariance_tolerance: float = 0.05  # BN: gain 1.5 vs 1 (and raw vs normalised) ratios equal within ± this
    yang_tolerance: float = 0.1         # finding: BN's per-layer factor within ± this of √(π/(π−1))
    stable_factor: float = 10.0         # BN: gradient norm over the steps ≤ this × step 0's; level weights
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
        for name in ("gain_tolerance", "invariance_tolerance", "yang_tolerance"):
            if not 0 < getattr(self, name) < 1:
                raise ReslabError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if not (self.raw_gradient_factor > 1 and self.oversize_update > 0 and self.stable_factor >= 1):
            raise ReslabError(f"need raw_gradient_factor > 1, oversize_update > 0, stable_factor >= 1; got "
                              f"{self.raw_gradient_factor}, {self.oversize_update}, {self.stable_factor}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, NAME, scale, seeds, overrides)


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
    return base.make_results(NAME, CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - start,
                             scope=scope)


# ---------------------------------------------------------------- judgement

def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    """Six parts, one check, three findings (:mod:`reslab.experiments.exploding_judge`)."""
    missing = [c for c in REQUIRED if c not in cfg.conditions]
    if missing:
        return base.cannot_judge(f"conditions {missing} were not run; the criteria need {list(REQUIRED)}")
    if not cfg.layer_gain > 1:
        return base.cannot_judge(f"layer_gain is {cfg.layer_gain:g}; the layer-wise growth part needs a gain > 1")
    runs = data["runs"]
    parts = [ej.part_growth(cfg, runs), ej.part_raw_gradient(cfg, runs), ej.part_raw_update(cfg, runs),
             ej.part_raw_overflow(cfg, runs), ej.part_bn_scale(cfg, runs), ej.part_bn_finite(cfg, runs)]
    raw_std = (data.get("input_stats") or {}).get("raw_std")
    findings = [ej.finding_yang(cfg, runs), ej.finding_input_scale(cfg, runs, raw_std),
                ej.finding_weight_level(cfg, runs)]
    return base.verdict(parts, _summary(cfg, runs), checks=[ej.check_located(cfg, runs)], findings=findings,
                        **_numbers(cfg, runs))


def _summary(cfg: Config, runs: dict) -> str:
    """The verdict's summary: the deepest nets' step-0 growth and raw-input outcomes."""
    deepest = str(max(cfg.depths))
    deep = {c: [layer_growth(r) for r in runs[c][deepest]] for c in ("gain", "gain+bn", "normalised+bn")}
    return (f"{cfg.seeds} seeds, up to {cfg.steps} SGD steps. At L={deepest}, step 0, ‖∂L/∂h_0‖/‖∂L/∂h_L‖: "
            f"without BN at gain {cfg.layer_gain:g} {ej._geo([g['ratio'] for g in deep['gain']])} "
            f"({stats.text(stats.summary([g['factor'] for g in deep['gain']]), '.3f')} per layer); with BN "
            f"{ej._geo([g['ratio'] for g in deep['gain+bn']])} at gain {cfg.layer_gain:g} and "
            f"{ej._geo([g['ratio'] for g in deep['normalised+bn']])} at gain {cfg.init_gain:g}. Raw 0-255 inputs "
            f"without BN: {ej._outcome(runs['raw'][deepest])}; with BN: {ej._outcome(runs['raw+bn'][deepest])}.")


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
