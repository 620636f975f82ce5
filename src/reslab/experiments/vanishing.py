"""Vanishing gradients, the textbook argument measured factor by factor.

The argument (Hochreiter 1991; Bengio et al. 1994; Glorot & Bengio 2010): backprop through
a layer ``h_l = W_l σ(h_{l-1}) + b_l`` multiplies the gradient by ``diag(σ'(h_{l-1})) W_lᵀ``,
so ``‖∂L/∂h_{l-1}‖ ≤ max σ' · ‖W_l‖₂ · ‖∂L/∂h_l‖``.  The sigmoid's derivative is at most
1/4, so ten sigmoid layers give a factor of about 0.25^9 *if the weights have gain ≤ 1*;
with He init a 200×200 weight has ‖W‖₂ ≈ 2√2, and the honest bound is ∏ 0.25·‖W_l‖₂.

What is measured (every part of :data:`CLAIM` has its own criterion in :func:`judge`)
    * σ and σ' on a grid, by autograd: the maximum is 0.25 at 0.
    * Plain fully connected nets on flattened Fashion-MNIST, :func:`reslab.models.mlp.mlp`
      (``depth`` hidden layers: Linear, then ``depth`` × [BN] → activation → Linear;
      see :mod:`reslab.experiments.fcnets` for the layer numbering), activations sigmoid,
      tanh, ReLU, ReLU+BN.  On one fixed probe batch, at init and after ``steps`` SGD
      steps: each Linear weight's gradient norm ‖∂L/∂W_l‖ and each layer output's
      backpropagated gradient norm ‖∂L/∂h_l‖ (hooks).  At init also, per layer, the
      mean σ'(z) over the batch at the activation's input z and ‖W_l‖₂, so the measured
      backward factor ‖∂L/∂h_{l-1}‖/‖∂L/∂h_l‖ stands next to the σ'·‖W‖ it is made of.
    * The claim's own example: a net of ten sigmoid layers (``mlp(10)``), the ratio
      ‖∂L/∂h_0‖/‖∂L/∂h_9‖ between the first and the tenth sigmoid layer's pre-activation,
      i.e. nine backward factors, next to 0.25^9 ≈ 3.8e-6 and to ∏_{l=1..9} 0.25·‖W_l‖₂.
    * ‖W_l‖₂ is the gain in the worst direction; a typical gradient meets the weights' RMS
      gain, about √2 under He init, so the measured factor (≈ 0.31 for sigmoid) lies between
      0.25 (σ' alone) and the bound 0.25·‖W_l‖₂ (≈ 0.7).
    * The probe runs on a float64 copy of the net (training itself is float32), so a
      1e-50 ratio at depth 100 is a number, not a float32 underflow to 0.

Why these defaults
    * Fully connected: the argument is about a product of per-layer factors, which an
      MLP shows without confounds, in seconds on one CPU thread.
    * Width 200, He init N(0, 2/fan_in) for *every* activation, as the repo's mlp (Balduzzi
      et al. 2017's setup), so the nets differ by their activation only.  He init is the
      generous choice for sigmoid (larger weights than Glorot's), so vanishing is not a
      small-init artefact.  ``init_gain`` scales it.
    * SGD lr 0.01, momentum 0.9, batch 128, ``steps`` steps: the picture once training starts.
    * Criteria (fixed here, before any run): "orders of magnitude below" is first/last ≤
      ``threshold`` = 1e-2; "avoids it" is first/last within [threshold, 1/threshold]: no
      vanishing *and* no explosion; "about 0.25^9" is within a factor ``about_factor`` = 10.

Not hidden: BN nets have their own gradient explosion at init (Yang et al. 2019, arXiv
1902.08129): with ReLU+BN each layer multiplies the backpropagated gradient by about 1.2,
so a deep BN net's first layer gets thousands of times the last layer's gradient.  That is
not counted as "avoiding" the problem: the ReLU+BN part fails when it happens.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.experiments import base
from reslab.experiments.fcnets import (MAX_DERIVATIVE, LayerOutputs, build_net, check_net_config, decades,
                                       floats, linears, load_flat, log_summary, normalise, spectral_norms,
                                       weight_grad_norms)

CLAIM = ("Vanishing gradients, in three parts: (1) the sigmoid's derivative is at most 0.25 (at 0); "
         "(2) so backprop through L sigmoid layers multiplies the gradient by at most a product of L "
         "factors 0.25·‖W_l‖₂, and ten sigmoid layers multiply it by about 0.25^9 ≈ 3.8e-6, leaving a deep "
         "sigmoid net's first layer with a gradient orders of magnitude below the last layer's; "
         "(3) ReLU (with or without BatchNorm) avoids this: the first layer's gradient stays within two "
         "orders of magnitude of the last's. (Hochreiter 1991; Glorot & Bengio 2010.)")

ACTIVATIONS = ("sigmoid", "tanh", "relu", "relu+bn")
REQUIRED = ("sigmoid", "relu", "relu+bn")   # the activations the criteria are about
EXAMPLE_LAYERS = 10                         # the claim's "ten sigmoid layers": mlp(10)

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
        if self.sigmoid_points < 3 or self.sigmoid_points % 2 == 0:
            raise ReslabError(f"sigmoid_points must be odd and >= 3, got {self.sigmoid_points}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "vanishing", scale, seeds, overrides)


# ---------------------------------------------------------------- measurement

def sigmoid_curve(cfg: Config) -> dict[str, Any]:
    half = cfg.sigmoid_points // 2  # a symmetric grid whose middle point is exactly 0
    x = (torch.arange(-half, half + 1, dtype=torch.float64) * (cfg.sigmoid_range / half)).requires_grad_()
    s = torch.sigmoid(x)
    (ds,) = torch.autograd.grad(s.sum(), x)  # σ'(x) = σ(x)(1 − σ(x)), by autograd
    i = int(ds.argmax())
    return {"x": x.detach().tolist(), "sigmoid": s.detach().tolist(), "derivative": ds.tolist(),
            "max_derivative": float(ds[i]), "argmax": float(x.detach()[i]),
            "sigma_bound": {str(d): 0.25 ** d for d in cfg.depths}}  # σ' alone, weights' gain excluded


_ACT_MODULES = (nn.Sigmoid, nn.Tanh, nn.ReLU)


def probe(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """One forward and backward pass on a float64 copy of ``net`` (BN in training mode):
    ‖∂L/∂W_l‖ and ‖∂L/∂h_l‖ for l = 0..depth, and for l = 1..depth the mean σ'(z) at the
    input z of the activation feeding Linear l, and ‖W_l‖₂."""
    net64 = copy.deepcopy(net).double().train()
    layers = linears(net64)
    acts = [m for m in net64.modules() if isinstance(m, _ACT_MODULES)]  # act k feeds Linear k+1
    inputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, i, _o: inputs.append(i[0].detach())) for m in acts]
    try:
        with LayerOutputs(layers) as outs:
            loss = nn.functional.cross_entropy(net64(x.double()), y)
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    dsigma = []
    for mod, z in zip(acts, inputs):
        z = z.clone().requires_grad_()
        (d,) = torch.autograd.grad(mod(z).sum(), z)
        dsigma.append(d.mean().item())
    return {"weight": weight_grad_norms(net64), "act": outs.grad_norms(), "dsigma": dsigma,
            "wnorm": spectral_norms(layers[1:]), "loss": loss.item()}


def measure(cfg: Config, activation: str, depth: int, seed: int, x, y) -> dict[str, Any]:
    """Gradients per layer at init and after ``cfg.steps`` SGD steps, for one net."""
    torch.manual_seed(seed)
    net = build_net(depth, activation, cfg.width, x.shape[1], 10, cfg.init_gain).train()
    px, py = x[:cfg.probe_batch], y[:cfg.probe_batch]
    p0 = probe(net, px, py)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.steps):
        idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    p1 = probe(net, px, py)
    return {"norms_init": p0["weight"], "norms_trained": p1["weight"],
            "ratio_init": _ratio(p0["weight"]), "ratio_trained": _ratio(p1["weight"]),
            "act_init": p0["act"], "act_trained": p1["act"], "act_ratio_init": _ratio(p0["act"]),
            "dsigma_init": p0["dsigma"], "wnorm_init": p0["wnorm"],
            "loss_init": p0["loss"], "loss_trained": p1["loss"]}


def _ratio(norms: list, first: int = 0, last: int = -1) -> float:
    """norms[first] / norms[last] (NaN if the last is not > 0)."""
    g = floats(norms)
    return float(g[first] / g[last]) if g[last] > 0 else float("nan")


def factors(act_norms: list) -> np.ndarray:
    """Measured backward factor per layer, l = 1..depth: ‖∂L/∂h_{l-1}‖ / ‖∂L/∂h_l‖."""
    g = floats(act_norms)
    return g[:-1] / g[1:]


def weight_bound(rec_wnorm: list, act: str, upto: int | None = None) -> float:
    """∏_{l=1..upto} σ'max·‖W_l‖₂: the bound on ‖∂L/∂h_0‖/‖∂L/∂h_upto‖ (no BN only)."""
    w = floats(rec_wnorm)[:upto]
    return float(np.prod(MAX_DERIVATIVE[act] * w))


def example(rec: dict[str, list], cfg: Config) -> dict[str, Any]:
    """The claim's ten-layer example from the records of mlp(10) sigmoid nets."""
    n = EXAMPLE_LAYERS - 1  # backward factors between the first and the tenth sigmoid layer
    return {"layers": EXAMPLE_LAYERS, "factors": n, "sigma_bound": 0.25 ** n,
            "ratio": [_ratio(a, 0, n) for a in rec["act_init"]],
            "weight_bound": [weight_bound(w, "sigmoid", n) for w in rec["wnorm_init"]],
            "weight_grad_ratio": [_ratio(w, 0, n) for w in rec["norms_init"]],
            "mean_factor": [float(np.exp(np.log(factors(a)[:n]).mean())) for a in rec["act_init"]],
            "mean_dsigma": [float(np.mean(d[:n])) for d in rec["dsigma_init"]],
            "mean_wnorm": [float(np.mean(w[:n])) for w in rec["wnorm_init"]]}


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
    data = {"sigmoid": sigmoid_curve(cfg), "example": example(rec10, cfg), "nets": nets, "summary": summary,
            "setup": f"plain fully connected nets on flattened {cfg.dataset} (first {cfg.n_images} train "
                     f"images, normalised), float64 probe on the first {cfg.probe_batch} images; weight "
                     f"gradient = Frobenius norm of ∂L/∂W_l; backpropagated gradient = ‖∂L/∂h_l‖ of Linear "
                     f"l's output; first/last = layer 0 / layer depth"}
    scope = {"data": f"{cfg.dataset}, first {cfg.n_images} training images (normalised), probe batch "
                     f"{cfg.probe_batch}",
             "budget": f"depths {', '.join(map(str, cfg.depths))}; width {cfg.width}; at init and after "
                       f"{cfg.steps} SGD steps (lr {cfg.lr}, batch {cfg.batch})"}
    return base.make_results("vanishing", CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - start,
                             scope=scope)


# ---------------------------------------------------------------- judgement

def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    """Six parts, each with a criterion fixed here; see :data:`CLAIM`."""
    missing = [a for a in REQUIRED if a not in cfg.activations]
    if missing:
        return base.cannot_judge(f"activations {missing} were not run; the criteria need {list(REQUIRED)}")
    nets, sig, ex = data["nets"], data["sigmoid"], data["example"]
    parts = [_part_derivative(cfg, sig), _part_product_bound(cfg, nets), _part_example(cfg, ex),
             _part_sigmoid_vanishes(cfg, nets), _part_relu_level(cfg, nets, "relu", "ReLU (no BN)"),
             _part_relu_level(cfg, nets, "relu+bn", "ReLU + BN")]
    r, wb = log_summary(ex["ratio"]), log_summary(ex["weight_bound"])
    geo = {act: {str(d): {w: log_summary(nets[act][str(d)][f"ratio_{w}"])["geo"] for w in ("init", "trained")}
                 for d in cfg.depths} for act in cfg.activations}
    numbers = {"max_sigmoid_derivative": sig["max_derivative"], "example_ratio_geo": r["geo"],
               "example_sigma_bound": ex["sigma_bound"], "example_weight_bound_geo": wb["geo"],
               "first_last_weight_grad_geo": geo}
    deepest = str(max(cfg.depths))
    summary = (f"Ten sigmoid layers: measured {_g(r['geo'])} vs 0.25^9 = {ex['sigma_bound']:.2g} "
               f"(σ' bound alone) and {_g(wb['geo'])} (with the weights' ‖W_l‖₂). First/last weight-gradient "
               f"ratio at init, deepest net (L={deepest}): "
               + ", ".join(f"{a} {_g(geo[a][deepest]['init'])}" for a in cfg.activations) + ".")
    return base.verdict(parts, summary, **numbers)


def _part_derivative(cfg: Config, sig: dict[str, Any]) -> dict[str, Any]:
    """1. σ' ≤ 1/4, attained at 0."""
    ok = (abs(sig["max_derivative"] - 0.25) < 1e-12 and abs(sig["argmax"]) < 1e-9
          and max(floats(sig["derivative"])) <= 0.25)
    return base.part(
        "the sigmoid's derivative is at most 0.25 (at 0)",
        f"max of σ'(x) (autograd, float64) on a grid of {cfg.sigmoid_points} points in "
        f"[-{cfg.sigmoid_range:g}, {cfg.sigmoid_range:g}] equals 0.25 within 1e-12, at x = 0",
        ok, f"max σ'(x) = {sig['max_derivative']:.12g} at x = {sig['argmax']:g}")


def _part_product_bound(cfg: Config, nets: dict[str, Any]) -> dict[str, Any]:
    """2. per-layer factor ≤ 0.25·‖W_l‖₂, product ≤ ∏ 0.25·‖W_l‖₂ (every sigmoid net)."""
    viol, lines, below = 0, [], []
    for d in cfg.depths:
        rec = nets["sigmoid"][str(d)]
        for a, w in zip(rec["act_init"], rec["wnorm_init"]):
            f, bound = factors(a), 0.25 * floats(w)
            viol += int(np.sum(~(f <= bound * (1 + 1e-9))))  # NaN counts as a violation
            viol += int(not _ratio(a) <= weight_bound(w, "sigmoid") * (1 + 1e-9))
        meas = log_summary([_ratio(a) for a in rec["act_init"]])
        wb = log_summary([weight_bound(w, "sigmoid") for w in rec["wnorm_init"]])
        below.append(meas["geo"] is not None and meas["geo"] > 0.25 ** d)
        lines.append(f"L={d}: measured {decades(meas)}, bound ∏0.25·‖W_l‖₂ {_g(wb['geo'])}, "
                     f"σ' bound alone 0.25^L {0.25 ** d:.2g}")
    wn = floats([w for d in cfg.depths for ws in nets["sigmoid"][str(d)]["wnorm_init"] for w in ws[:-1]])
    return base.part(
        "backprop through L sigmoid layers multiplies the gradient by at most ∏ 0.25·‖W_l‖₂",
        "in every sigmoid net (every seed and depth, at init), each measured backward factor "
        "‖∂L/∂h_{l-1}‖/‖∂L/∂h_l‖ ≤ 0.25·‖W_l‖₂ and ‖∂L/∂h_0‖/‖∂L/∂h_L‖ ≤ ∏ 0.25·‖W_l‖₂",
        viol == 0,
        f"{viol} violations. " + "; ".join(lines)
        + f". Hidden weights' ‖W_l‖₂ = {wn.mean():.2f} on average, so 0.25^L alone (weights' gain excluded) "
        + ("lies below the measured ratio at every depth" if all(below) else
           f"lies below the measured ratio at {sum(below)}/{len(below)} depths"))


def _part_example(cfg: Config, ex: dict[str, Any]) -> dict[str, Any]:
    """3. the claim's example: ten sigmoid layers ≈ 0.25^9."""
    r, wb = log_summary(ex["ratio"]), log_summary(ex["weight_bound"])
    off = None if r["geo"] is None else r["geo"] / ex["sigma_bound"]
    return base.part(
        f"ten sigmoid layers multiply the gradient by about 0.25^9 ≈ {ex['sigma_bound']:.2g}",
        f"in a net of ten sigmoid layers at init, ‖∂L/∂h_0‖/‖∂L/∂h_9‖ (geometric mean over seeds) is within "
        f"a factor {cfg.about_factor:g} of 0.25^9",
        off is not None and 1 / cfg.about_factor <= off <= cfg.about_factor,
        f"measured {decades(r)}, {_times(off)} 0.25^9; bound with the measured weights ∏0.25·‖W_l‖₂ "
        f"{_g(wb['geo'])}; per layer: measured factor {_mean(ex['mean_factor']):.3f} = mean σ'(z) "
        f"{_mean(ex['mean_dsigma']):.3f} × weights (‖W_l‖₂ {_mean(ex['mean_wnorm']):.2f}) vs 0.25 alone; "
        f"weight-gradient ratio first/tenth {_g(log_summary(ex['weight_grad_ratio'])['geo'])}")


# 4.-6. first/last weight-gradient ratio: sigmoid below t; ReLU and ReLU+BN inside [t, 1/t]

def _part_sigmoid_vanishes(cfg: Config, nets: dict[str, Any]) -> dict[str, Any]:
    """4. deep sigmoid nets: first/last weight-gradient norm ≤ threshold everywhere."""
    t = cfg.threshold
    ok = all(np.all(v <= t) for v in _first_last(cfg, nets, "sigmoid").values())  # NaN fails
    return base.part(
        "deep sigmoid nets: the first layer's gradient is orders of magnitude below the last's",
        f"first/last Linear weight-gradient norm ≤ {t:g} {_every(cfg)}", ok, _first_last_text(cfg, nets, "sigmoid"))


def _part_relu_level(cfg: Config, nets: dict[str, Any], act: str, name: str) -> dict[str, Any]:
    """5./6. ReLU, ReLU+BN: first/last weight-gradient norm within [threshold, 1/threshold] everywhere."""
    t = cfg.threshold
    ok = all(np.all((v >= t) & (v <= 1 / t)) for v in _first_last(cfg, nets, act).values())
    return base.part(
        f"{name} keeps the first layer's gradient within two orders of magnitude of the last's "
        "(no vanishing, no explosion)",
        f"first/last Linear weight-gradient norm within [{t:g}, {1 / t:g}] {_every(cfg)}", ok,
        _first_last_text(cfg, nets, act))


def _first_last(cfg: Config, nets: dict[str, Any], act: str) -> dict[tuple[str, int], np.ndarray]:
    """Per (init|trained, depth): each seed's first/last weight-gradient ratio."""
    return {(when, d): floats(nets[act][str(d)][f"ratio_{when}"]) for when in ("init", "trained")
            for d in cfg.depths}


def _first_last_text(cfg: Config, nets: dict[str, Any], act: str) -> str:
    ratios = _first_last(cfg, nets, act)
    return "; ".join(f"{'init' if w == 'init' else f'after {cfg.steps} steps'} "
                     + ", ".join(f"L={d} {decades(log_summary(ratios[(w, d)]))}" for d in cfg.depths)
                     for w in ("init", "trained"))


def _every(cfg: Config) -> str:
    return f"in every seed and depth, at init and after {cfg.steps} SGD steps"

def _g(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2g}"


def _mean(v) -> float:
    return float(np.nanmean(floats(v))) if len(v) else float("nan")


def _times(off) -> str:
    if off is None:
        return "n/a ×"
    return f"{off:.2g}×" if off >= 1 else f"1/{1 / off:.2g} of"
