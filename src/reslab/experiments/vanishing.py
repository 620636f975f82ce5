"""Vanishing gradients, the textbook argument measured factor by factor.

The argument (Hochreiter 1991; Bengio et al. 1994; Glorot & Bengio 2010): backprop through
a layer ``h_l = W_l σ(h_{l-1}) + b_l`` multiplies the gradient by ``diag(σ'(h_{l-1})) W_lᵀ``,
so ``‖∂L/∂h_{l-1}‖ ≤ max σ' · ‖W_l‖₂ · ‖∂L/∂h_l‖``.  The sigmoid's derivative is at most
1/4, so ten sigmoid layers give a factor of about 0.25^9 *if the weights have gain ≤ 1*;
with He init a 200×200 weight has ‖W‖₂ ≈ 2√2, and the honest bound is ∏ 0.25·‖W_l‖₂.

What is measured (:mod:`reslab.experiments.vanishing_probe`)
    * σ and σ' on a grid, by autograd: the maximum is 0.25 at 0.
    * Plain fully connected nets on flattened Fashion-MNIST, :func:`reslab.models.mlp.mlp`
      (``depth`` hidden layers: Linear, then ``depth`` × [BN] → activation → Linear;
      see :mod:`reslab.experiments.fcnets` for the layer numbering), activations sigmoid,
      tanh, ReLU, ReLU+BN.  On one fixed probe batch, at init and after ``steps`` SGD
      steps: each Linear weight's gradient norm ‖∂L/∂W_l‖ and each layer output's
      backpropagated gradient norm ‖∂L/∂h_l‖ (hooks), on a float64 copy of the net.  At init
      also, per layer, the mean σ'(z) at the activation's input and ‖W_l‖₂.
    * The claim's own example: ten sigmoid layers (``mlp(10)``), ‖∂L/∂h_0‖/‖∂L/∂h_9‖ (nine
      backward factors) next to 0.25^9 ≈ 3.8e-6 and to ∏_{l=1..9} 0.25·‖W_l‖₂.

The verdict (:mod:`reslab.experiments.vanishing_judge`)
    Parts, each quoting the seed article: deep sigmoid nets starve their first layers
    (first/last weight-gradient ratio ≤ ``threshold`` = 1e-2); ten sigmoid layers give about
    0.25^9 (within ×/÷ ``about_factor`` = 10); ReLU avoids this, and ReLU + BN resolves it
    "to a large extent" (first/last ≥ ``threshold``: one-sided, since the claim is about the
    first layer's gradient collapsing).  Each reads the 95% interval over seeds, at every
    depth, at init and after ``steps`` steps.  Checks: σ' ≤ 1/4 at 0, and every backward
    factor ≤ 0.25·‖W_l‖₂.  Findings: ReLU + BN grows the gradient toward the input at init
    by Yang et al. 2019's √(π/(π−1)) ≈ 1.21 per layer (within ±``yang_tolerance``), so a deep
    BN net's first layer gets thousands of times the last layer's gradient at init; after
    ``steps`` SGD steps that growth is gone (first/last ≤ ``settled_factor`` = 10).

Why these defaults
    * Fully connected: the argument is about a product of per-layer factors, which an MLP
      shows without confounds, in seconds on one CPU thread.
    * Width 200, He init N(0, 2/fan_in) for *every* activation, as the repo's mlp (Balduzzi
      et al. 2017's setup), so the nets differ by their activation only.  He init is the
      generous choice for sigmoid (larger weights than Glorot's), so vanishing is not a
      small-init artefact.  ``init_gain`` scales it.
    * SGD lr 0.01, momentum 0.9, batch 128, ``steps`` steps: the picture once training starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reslab.errors import ReslabError
from reslab.experiments import base
from reslab.experiments import vanishing_judge as vj
from reslab.experiments.fcnets import YANG_FACTOR, check_net_config, decades, load_flat, log_summary, normalise
from reslab.experiments.vanishing_probe import EXAMPLE_LAYERS, example, measure, sigmoid_curve

NAME = "vanishing"
TITLE = "Vanishing gradients"
IN_REPRODUCE = True
ORDER = 10
HELP = "vanishing gradients: sigmoid's 0.25 derivative, per-layer backward factors, ReLU(+BN)"
DESCRIPTION = ("Deep plain fully connected nets (sigmoid, tanh, ReLU, ReLU+BN) on flattened "
               "Fashion-MNIST: per-layer backward factors next to sigma'(z) and the weights' spectral "
               "norms, the ten-layer 0.25^9 example, the product bound with and without the weights, "
               "and the first/last layer gradient ratio at init and after a few SGD steps.  "
               "Quick scale: about 20 s on one CPU thread.")
CLAIM = ("Vanishing gradients (the seed article): the sigmoid's derivative is at most 0.25, so ten sigmoid "
         "layers multiply the gradient by about 0.25^9 and deep sigmoid nets starve their first layers of "
         "gradient; ReLU avoids this, and \"Batch Normalization combined with ReLU resolves the vanishing and "
         "exploding gradients problems to a large extent\". (Hochreiter 1991; Glorot & Bengio 2010.)")

ACTIVATIONS = ("sigmoid", "tanh", "relu", "relu+bn")
REQUIRED = ("sigmoid", "relu", "relu+bn")   # the activations the criteria are about

SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=3, depths=(10, 20, 50), n_images=2048, steps=20),
    "full": dict(seeds=5, depths=(10, 20, 50, 100), n_images=10000, steps=500),
}


@dataclass(frozen=True)
class Config(base.ExperimentConfig):
    seeds: int = 3                      # seeds 0..seeds-1: init and batch order
    threads: int | None = 1             # tiny nets: one torch thread (see base.torch_threads)
    depths: tuple[int, ...] = (10, 20, 50)  # hidden layers (nonlinearities); depth + 1 Linear layers
    activations: tuple[str, ...] = ACTIVATIONS
    width: int = 200                    # hidden units per layer
    init_gain: float = 1.0              # × He init's std, sqrt(2/fan_in), for every Linear weight
    dataset: str = "fashion-mnist"      # fashion-mnist | synthetic
    n_images: int = 2048                # training slice: the first n_images of the train split
    probe_batch: int = 512              # fixed images on which gradients are measured
    batch: int = 128                    # images per SGD step
    steps: int = 20                     # SGD steps between the two measurements (iterations, not epochs)
    lr: float = 0.01                    # per batch of `batch` images
    momentum: float = 0.9
    threshold: float = 1e-2             # first/last ≤ this: "orders of magnitude below"; ReLU band [t, 1/t]
    about_factor: float = 10.0          # "about 0.25^9": the measured ten-layer factor within ×/÷ this
    yang_tolerance: float = 0.1         # finding: BN's per-layer factor at init within ± this of √(π/(π−1))
    settled_factor: float = 10.0        # finding: BN's first/last after `steps` steps ≤ this
    sigmoid_range: float = 6.0          # the sigmoid panel's grid is [-r, r]
    sigmoid_points: int = 241           # odd, so the grid contains 0

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "activations", tuple(self.activations))
        super().__post_init__()
        check_net_config(self)
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if bad or not self.activations:
            raise ReslabError(f"unknown activation(s) {bad}; valid: {', '.join(ACTIVATIONS)}")
        if self.probe_batch < 2 or self.probe_batch > self.n_images:
            raise ReslabError(f"probe_batch must be in 2..n_images ({self.n_images}), got {self.probe_batch}")
        if not 0 < self.threshold < 1:
            raise ReslabError(f"threshold must be in (0, 1), got {self.threshold}")
        if not self.about_factor > 1:
            raise ReslabError(f"about_factor must be > 1, got {self.about_factor}")
        if not 0 < self.yang_tolerance < 1 or not self.settled_factor > 1:
            raise ReslabError(f"need 0 < yang_tolerance < 1 and settled_factor > 1, got {self.yang_tolerance}, "
                              f"{self.settled_factor}")
        if self.sigmoid_points < 3 or self.sigmoid_points % 2 == 0:
            raise ReslabError(f"sigmoid_points must be odd and >= 3, got {self.sigmoid_points}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, NAME, scale, seeds, overrides)


def run(cfg: Config, ctx: base.Context) -> dict[str, Any]:
    start = time.perf_counter()
    x, y = load_flat(cfg.dataset, cfg.n_images, ctx.data_dir)
    x = normalise(x)
    nets: dict[str, dict[str, dict[str, list]]] = {}
    summary: dict[str, dict[str, dict[str, dict]]] = {}
    for act in cfg.activations:
        nets[act], summary[act] = {}, {}
        for depth in cfg.depths:
            t = time.perf_counter()
            per_seed = [measure(cfg, act, depth, seed, x, y) for seed in range(cfg.seeds)]
            rec = {k: [r[k] for r in per_seed] for k in per_seed[0]}
            nets[act][str(depth)] = rec
            summary[act][str(depth)] = {"init": log_summary(rec["ratio_init"]),
                                        "trained": log_summary(rec["ratio_trained"]),
                                        "act_init": log_summary(rec["act_ratio_init"])}
            ctx.say(f"vanishing: {act:8s} depth {depth:3d}: first/last weight gradient at init "
                    f"{decades(summary[act][str(depth)]['init'])} ({time.perf_counter() - t:.1f}s)")
    ten = str(EXAMPLE_LAYERS)
    if "sigmoid" in nets and ten in nets["sigmoid"]:
        rec10 = nets["sigmoid"][ten]
    else:  # the example is the claim's: always measured, whatever the depths
        per_seed = [measure(cfg, "sigmoid", EXAMPLE_LAYERS, s, x, y) for s in range(cfg.seeds)]
        rec10 = {k: [r[k] for r in per_seed] for k in per_seed[0]}
    data = {"sigmoid": sigmoid_curve(cfg), "example": example(rec10), "nets": nets, "summary": summary,
            "setup": f"plain fully connected nets on flattened {cfg.dataset} (first {cfg.n_images} train "
                     f"images, normalised), float64 probe on the first {cfg.probe_batch} images; weight "
                     f"gradient = Frobenius norm of ∂L/∂W_l; backpropagated gradient = ‖∂L/∂h_l‖ of Linear "
                     f"l's output; first/last = layer 0 / layer depth"}
    scope = {"data": f"{cfg.dataset}, first {cfg.n_images} training images (normalised), probe batch "
                     f"{cfg.probe_batch}",
             "budget": f"depths {', '.join(map(str, cfg.depths))}; width {cfg.width}; at init and after "
                       f"{cfg.steps} SGD steps (lr {cfg.lr}, batch {cfg.batch})"}
    return base.make_results(NAME, CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - start,
                             scope=scope)


# ---------------------------------------------------------------- judgement

def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    """Four parts, two checks, two findings (:mod:`reslab.experiments.vanishing_judge`)."""
    missing = [a for a in REQUIRED if a not in cfg.activations]
    if missing:
        return base.cannot_judge(f"activations {missing} were not run; the criteria need {list(REQUIRED)}")
    nets, sig, ex = data["nets"], data["sigmoid"], data["example"]
    parts = [vj.part_sigmoid_vanishes(cfg, nets), vj.part_example(cfg, ex), vj.part_relu(cfg, nets, "relu"),
             vj.part_relu(cfg, nets, "relu+bn")]
    checks = [vj.check_derivative(cfg, sig), vj.check_product_bound(cfg, nets)]
    findings = [vj.finding_yang(cfg, nets), vj.finding_settles(cfg, nets)]
    r = log_summary(ex["ratio"])
    geo = {act: {str(d): {w: log_summary(nets[act][str(d)][f"ratio_{w}"])["geo"] for w in ("init", "trained")}
                 for d in cfg.depths} for act in cfg.activations}
    deepest = str(max(cfg.depths))
    bn = {w: decades(log_summary(nets["relu+bn"][deepest][f"ratio_{w}"])) for w in ("init", "trained")}
    summary = (f"Ten sigmoid layers: {decades(r)} vs 0.25^9 = {ex['sigma_bound']:.2g}. First/last weight-gradient "
               f"ratio at init, L={deepest}: " + ", ".join(f"{a} {vj._g(geo[a][deepest]['init'])}"
                                                          for a in cfg.activations)
               + f". ReLU + BN at L={deepest}: {bn['init']} at init (Yang et al.: √(π/(π−1))^L = "
               f"{YANG_FACTOR ** int(deepest):.2g}), {bn['trained']} after {cfg.steps} steps.")
    return base.verdict(parts, summary, checks=checks, findings=findings,
                        max_sigmoid_derivative=sig["max_derivative"], example_ratio_geo=r["geo"],
                        example_sigma_bound=ex["sigma_bound"], first_last_weight_grad_geo=geo)
