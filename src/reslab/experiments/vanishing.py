"""Vanishing gradients: the sigmoid's derivative is at most 1/4, so backprop through L
sigmoid layers multiplies the gradient by at most about 0.25^L.  ReLU (with BN) does not
shrink it.

What is measured
    * The sigmoid and its derivative on a grid, by autograd: the maximum is 0.25 at 0.
    * Deep *plain* fully connected nets on flattened Fashion-MNIST, built by
      :func:`reslab.models.mlp.mlp` (784 → width → … → 10): Linear, then ``depth`` times
      [BN] → activation → Linear.  ``depth`` counts hidden layers (nonlinearities), as
      in the mlp and in Balduzzi et al.; a net has depth + 1 Linear layers, and the
      gradient from the last Linear to the first passes through ``depth`` activations,
      hence the bound 0.25^depth.  Activations: sigmoid, tanh, ReLU, ReLU+BN.
    * The Frobenius norm of each Linear layer's weight gradient (cross-entropy, on one
      fixed probe batch, BN in training mode), at initialisation and again after
      ``steps`` SGD steps, and the ratio first/last Linear layer, per seed.  Norms are
      summed in float64: in float32 the sum of squares of a 1e-24 gradient underflows
      to 0 although the gradient itself does not.

Why these defaults
    * Fully connected, not convolutional: the argument is about a product of per-layer
      derivatives, which an MLP shows without confounds, and it runs in seconds on a CPU.
    * Width 200 and He init (N(0, 2/fan_in)) for *every* activation, as the repo's mlp
      (Balduzzi et al.'s setup), so the nets differ by their activation only.  He init
      gives sigmoid larger weights than Glorot's would: it is the generous choice for
      sigmoid, so the vanishing is not a small-init artefact.  ``init_gain`` scales it.
    * SGD lr 0.01, momentum 0.9, batch 128: a standard, stable setting for all four nets;
      ``steps`` is "a few steps", to see whether the picture persists once training starts.
    * The verdict's threshold: "orders of magnitude below" means first/last <= 1e-2 (at
      least two orders), for both halves of the claim; it is in the config.

Not hidden: with ReLU+BN the first layer's gradient is *larger* than the last layer's at
initialisation, increasingly with depth: BN nets have their own gradient explosion at
init (Yang et al. 2019, arXiv 1902.08129).  The claim tested here is only "does not vanish".
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
from reslab.experiments.fcnets import (FLOAT32_TINY, build_net, floats, load_flat, mean_std, normalise,
                                       num, save_figure, torch_threads, weight_grad_norms)

CLAIM = ("The sigmoid's derivative is at most 0.25, so ten sigmoid layers multiply the gradient "
         "by about 0.25^9; ReLU avoids this (reslab DESIGN item 2; e.g. Hochreiter 1991, "
         "Glorot & Bengio 2010).")

ACTIVATIONS = ("sigmoid", "tanh", "relu", "relu+bn")
DATASETS = ("fashion-mnist", "synthetic")

# Settings per scale; config_for() starts from these.  Tests shrink them with monkeypatch.
SCALES: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=3, depths=(10, 20, 50), n_images=2048, steps=20),
    "full": dict(seeds=5, depths=(10, 20, 50, 100), n_images=10000, steps=500),
}


@dataclass(frozen=True)
class Config:
    scale: str = "quick"
    seeds: int = 3                      # seeds 0..seeds-1: init and batch order
    depths: tuple[int, ...] = (10, 20, 50)  # hidden layers (nonlinearities); depth + 1 Linear layers
    activations: tuple[str, ...] = ACTIVATIONS
    width: int = 200                    # hidden units per layer
    init_gain: float = 1.0              # × He init's std, sqrt(2/fan_in), for every Linear weight
    dataset: str = "fashion-mnist"      # fashion-mnist | synthetic
    data_dir: str | None = None         # where the dataset files are (None: reslab.data's search order)
    n_images: int = 2048                # training slice: the first n_images of the train split
    probe_batch: int = 512              # fixed images on which gradient norms are measured
    batch: int = 128                    # images per SGD step
    steps: int = 20                     # SGD steps between the two measurements (iterations, not epochs)
    lr: float = 0.01                    # per batch of `batch` images
    momentum: float = 0.9
    threshold: float = 1e-2             # first/last ratio at or below this = "orders of magnitude below"
    sigmoid_range: float = 6.0          # the sigmoid panel's grid is [-r, r]
    sigmoid_points: int = 241           # odd, so the grid contains 0
    threads: int = 1                    # torch CPU threads during the run (restored after); see torch_threads

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "activations", tuple(self.activations))
        if self.scale not in SCALES:
            raise ReslabError(f"unknown scale {self.scale!r}; valid: {', '.join(SCALES)}")
        check_common(self)
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if bad or not self.activations:
            raise ReslabError(f"unknown activation(s) {bad}; valid: {', '.join(ACTIVATIONS)}")
        if self.probe_batch < 2 or self.probe_batch > self.n_images:
            raise ReslabError(f"probe_batch must be in 2..n_images ({self.n_images}), got {self.probe_batch}")
        if not 0 < self.threshold < 1:
            raise ReslabError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.sigmoid_points < 3 or self.sigmoid_points % 2 == 0:
            raise ReslabError(f"sigmoid_points must be odd and >= 3, got {self.sigmoid_points}")


def check_common(cfg) -> None:
    """Checks shared with the exploding experiment's config."""
    if cfg.seeds < 1:
        raise ReslabError(f"seeds must be >= 1, got {cfg.seeds}")
    if not cfg.depths or min(cfg.depths) < 1:
        raise ReslabError(f"every depth (hidden layers) must be >= 1, got {cfg.depths}")
    if not (math.isfinite(cfg.init_gain) and cfg.init_gain > 0):
        raise ReslabError(f"init_gain must be a finite number > 0, got {cfg.init_gain}")
    if cfg.dataset not in DATASETS:
        raise ReslabError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(DATASETS)}")
    for name in ("width", "n_images", "batch"):
        if getattr(cfg, name) < 1:
            raise ReslabError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.threads < 1:
        raise ReslabError(f"threads must be >= 1, got {cfg.threads}")
    if cfg.batch > cfg.n_images:
        raise ReslabError(f"batch ({cfg.batch}) must not exceed n_images ({cfg.n_images})")
    if cfg.steps < 0 or cfg.lr <= 0 or not 0 <= cfg.momentum < 1:
        raise ReslabError(f"need steps >= 0, lr > 0, 0 <= momentum < 1; got {cfg.steps}, {cfg.lr}, {cfg.momentum}")


def config_for(scale: str, seeds: int | None = None, **overrides) -> Config:
    return base.config_from_scales(Config, SCALES, "vanishing", scale, seeds, overrides)


# ---------------------------------------------------------------- the experiment

def sigmoid_curve(cfg: Config) -> dict[str, Any]:
    half = cfg.sigmoid_points // 2  # a symmetric grid whose middle point is exactly 0
    x = (torch.arange(-half, half + 1, dtype=torch.float64) * (cfg.sigmoid_range / half)).requires_grad_()
    s = torch.sigmoid(x)
    (ds,) = torch.autograd.grad(s.sum(), x)  # σ'(x) = σ(x)(1 − σ(x)), by autograd
    i = int(ds.argmax())
    bound = {str(d): 0.25 ** d for d in cfg.depths}  # mlp(d): d sigmoids between the first and last Linear
    return {"x": x.detach().tolist(), "sigmoid": s.detach().tolist(), "derivative": ds.tolist(),
            "max_derivative": float(ds[i]), "argmax": float(x.detach()[i]), "bound_product": bound}


def _loss(net, x, y) -> torch.Tensor:
    return nn.functional.cross_entropy(net(x), y)


def measure(cfg: Config, activation: str, depth: int, seed: int, x, y) -> dict[str, Any]:
    """Gradient norms per layer at init and after ``cfg.steps`` SGD steps, for one net."""
    torch.manual_seed(seed)
    net = build_net(depth, activation, cfg.width, x.shape[1], 10, cfg.init_gain)
    net.train()  # BN uses batch statistics when gradients are measured
    px, py = x[:cfg.probe_batch], y[:cfg.probe_batch]

    def probe():
        net.zero_grad(set_to_none=True)
        loss = _loss(net, px, py)
        loss.backward()
        return weight_grad_norms(net), loss.item()

    norms0, loss0 = probe()
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.steps):
        idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
        opt.zero_grad(set_to_none=True)
        _loss(net, x[idx], y[idx]).backward()
        opt.step()
    norms1, loss1 = probe()

    def ratio(n):
        return n[0] / n[-1] if n[-1] > 0 else float("nan")

    return {"norms_init": norms0, "norms_trained": norms1, "ratio_init": ratio(norms0),
            "ratio_trained": ratio(norms1), "loss_init": loss0, "loss_trained": loss1}


def run(cfg: Config, progress: base.Progress | None = None) -> dict[str, Any]:
    with torch_threads(cfg.threads):
        return _run(cfg, progress)


def _run(cfg: Config, progress: base.Progress | None) -> dict[str, Any]:
    start = time.perf_counter()
    say = progress or (lambda msg: None)
    x, y = load_flat(cfg.dataset, cfg.n_images, cfg.data_dir)
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
            summary[act][str(depth)] = {"init": mean_std(rec["ratio_init"]),
                                        "trained": mean_std(rec["ratio_trained"])}
            s = summary[act][str(depth)]["init"]
            say(f"vanishing: {act:8s} depth {depth:3d}: first/last at init 10^{s['log10_mean']:.1f} "
                f"({time.perf_counter() - t:.1f}s, {cfg.seeds} seeds)")
    data = {"sigmoid": sigmoid_curve(cfg), "nets": nets, "summary": summary,
            "setup": f"plain fully connected nets on flattened {cfg.dataset} (first {cfg.n_images} train "
                     f"images, normalised); gradient norm = Frobenius norm of each Linear weight's gradient "
                     f"on the first {cfg.probe_batch} images; ratio = first layer / last layer"}
    return base.make_results("vanishing", CLAIM, cfg, data, judge(cfg, data), time.perf_counter() - start)


def judge(cfg: Config, data: dict[str, Any]) -> dict[str, Any]:
    """Sigmoid: first/last ≤ threshold in every seed and depth; ReLU+BN: > threshold in every one."""
    sig = data["sigmoid"]
    deriv_ok = abs(sig["max_derivative"] - 0.25) < 1e-12 and abs(sig["argmax"]) < 1e-9
    missing = [a for a in ("sigmoid", "relu+bn") if a not in cfg.activations]
    numbers: dict[str, Any] = {"max_sigmoid_derivative": sig["max_derivative"],
                               "argmax_sigmoid_derivative": sig["argmax"],
                               "bound_0.25^L": sig["bound_product"]}
    if missing:
        return base.verdict(False, f"cannot judge: activations {missing} were not run", **numbers)
    ok = deriv_ok
    parts = []
    for when in ("init", "trained"):
        sig_r = {d: floats(data["nets"]["sigmoid"][str(d)][f"ratio_{when}"]) for d in cfg.depths}
        bn_r = {d: floats(data["nets"]["relu+bn"][str(d)][f"ratio_{when}"]) for d in cfg.depths}
        ok &= all(np.all(r <= cfg.threshold) for r in sig_r.values())  # NaN fails both tests
        ok &= all(np.all(r > cfg.threshold) for r in bn_r.values())
        numbers[f"first_last_ratio_{when}_mean_std"] = {
            act: {str(d): [data["summary"][act][str(d)][when][k] for k in ("mean", "std")] for d in cfg.depths}
            for act in cfg.activations}
        label = "at init" if when == "init" else f"after {cfg.steps} steps"
        parts.append(f"{label}: sigmoid " + ", ".join(f"{_g(sig_r[d])} (L={d})" for d in cfg.depths)
                     + "; ReLU+BN " + ", ".join(f"{_g(bn_r[d])} (L={d})" for d in cfg.depths))
    sig_init = {d: data["summary"]["sigmoid"][str(d)]["init"] for d in cfg.depths}
    per_layer = {d: float("nan") if s["underflow"] else 10 ** (num(s["log10_mean"]) / d)  # clamped: no factor
                 for d, s in sig_init.items()}
    numbers["sigmoid_per_layer_factor_init"] = {str(d): f for d, f in per_layer.items()}
    summary = (f"max sigmoid'(x) = {sig['max_derivative']:.4g} at x = {sig['argmax']:g}. "
               f"First/last layer gradient-norm ratio (geometric mean over {cfg.seeds} seeds) "
               + "; ".join(parts)
               + ". Bound 0.25^L: " + ", ".join(f"{0.25 ** d:.1e}" for d in cfg.depths)
               + "; measured sigmoid factor per layer at init, ratio^(1/L): "
               + ", ".join("n/a (underflow)" if math.isnan(f) else f"{f:.2f}" for f in per_layer.values())
               + " (sigma' <= 0.25 times the weights' gain, about sqrt(2) under He init)"
               + f". Criterion: sigmoid <= {cfg.threshold:g} and ReLU+BN > {cfg.threshold:g} in every seed.")
    return base.verdict(ok, summary, **numbers)


def _g(ratios: np.ndarray) -> str:
    """Geometric mean of per-seed ratios, as text."""
    r = ratios[np.isfinite(ratios)]
    if r.size < ratios.size:
        return "non-finite"
    if (r == 0).any():
        return f"0 in {int((r == 0).sum())}/{r.size} seeds (float32 underflow)"
    return f"{10 ** np.log10(np.maximum(r, FLOAT32_TINY)).mean():.1e}"


# ---------------------------------------------------------------- figures

def plot(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg, data = results["config"], results["data"]
    depths, acts = [int(d) for d in cfg["depths"]], list(cfg["activations"])
    colours = {"sigmoid": "tab:red", "tanh": "tab:orange", "relu": "tab:green", "relu+bn": "tab:blue"}
    paths = []

    # 1. the sigmoid, its derivative, and the bound over depth
    sig = data["sigmoid"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(sig["x"], sig["sigmoid"], label="σ(x)")
    a.plot(sig["x"], sig["derivative"], label="σ'(x) = σ(x)(1 − σ(x))")
    a.axhline(0.25, color="grey", ls=":")
    a.plot([sig["argmax"]], [sig["max_derivative"]], "ko")
    a.annotate(f"max {sig['max_derivative']:.3g} at x={sig['argmax']:g}", (sig["argmax"], sig["max_derivative"]),
               textcoords="offset points", xytext=(8, 8))
    a.set(xlabel="x", title="the sigmoid's derivative is at most 1/4")
    a.legend(loc="center right")
    ls = np.arange(1, max(depths) + 1)
    b.semilogy(ls, 0.25 ** ls, color="grey", label="bound 0.25^L")
    if "sigmoid" in acts:
        for when, mk in (("init", "o"), ("trained", "x")):
            g = [10 ** num(data["summary"]["sigmoid"][str(d)][when]["log10_mean"]) for d in depths]
            b.semilogy(depths, g, mk, color=colours["sigmoid"], label=f"measured sigmoid first/last ({when})")
    b.set(xlabel="depth L (sigmoid layers)", ylabel="gradient factor", title="product over L layers")
    b.legend(fontsize=8)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "vanishing_sigmoid.png"))

    # 2. per-layer gradient norms
    fig, axes = plt.subplots(2, len(depths), figsize=(4 * len(depths), 7), squeeze=False)
    for col, d in enumerate(depths):
        for row, when in enumerate(("init", "trained")):
            ax = axes[row][col]
            for act in acts:
                norms = np.array([floats(n) for n in data["nets"][act][str(d)][f"norms_{when}"]])
                geo = 10 ** np.log10(np.maximum(norms, FLOAT32_TINY)).mean(axis=0)
                ax.semilogy(np.arange(1, len(geo) + 1), geo, "-", color=colours.get(act), label=act)
            label = "at init" if when == "init" else f"after {cfg['steps']} SGD steps"
            ax.set(title=f"depth {d}, {label}", xlabel="Linear layer (input → output)")
            if col == 0:
                ax.set_ylabel("‖∂loss/∂W‖ (geo. mean over seeds)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "vanishing_layers.png"))

    # 3. first/last ratio over depth, mean ± std of log10 over seeds
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, when in zip(axes, ("init", "trained")):
        for act in acts:
            s = [data["summary"][act][str(d)][when] for d in depths]
            ax.errorbar(depths, [10 ** num(v["log10_mean"]) for v in s],
                        yerr=_log_err(s), marker="o", capsize=3, color=colours.get(act), label=act)
        ax.axhline(cfg["threshold"], color="grey", ls=":", label=f"threshold {cfg['threshold']:g}")
        ax.set_yscale("log")
        label = "at init" if when == "init" else f"after {cfg['steps']} steps"
        ax.set(xlabel="depth (hidden layers)", title=f"first / last layer gradient norm, {label}")
    axes[0].set_ylabel(f"ratio (geo. mean ± std, {cfg['seeds']} seeds)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "vanishing_ratio.png"))
    return paths


def _log_err(stats: list[dict]) -> np.ndarray:
    m = floats([s["log10_mean"] for s in stats])
    sd = floats([s["log10_std"] for s in stats])
    return np.array([10 ** m - 10 ** (m - sd), 10 ** (m + sd) - 10 ** m])
