"""Fully connected nets on flattened images: what the vanishing and exploding experiments share.

Building the plain nets (:func:`build_net`), loading and normalising the flattened images,
the shared config checks (:func:`check_net_config`), per-layer gradient norms (weights'
and backpropagated: :class:`LayerOutputs`), spectral norms, summaries of log ratios over
seeds and their reading against a criterion's band (:func:`band_status`), the per-layer
factor fit (:func:`fit_factor`), the small helpers that read numbers back from results.json.

Layer numbering: a :func:`reslab.models.mlp.mlp` of ``depth`` hidden layers has ``depth + 1``
Linear layers, numbered 0 (the stem, input side) .. depth (the head, logits).  ``h_l`` is
the output of Linear ``l``; the backward pass goes from ``∂L/∂h_depth`` to ``∂L/∂h_0``
through ``depth`` activations, and ``h_l = W_l · act([BN](h_{l-1})) + b_l`` for ``l ≥ 1``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.experiments import stats

DATASETS = ("fashion-mnist", "synthetic")

# The largest derivative of each activation: the per-layer factor of the textbook bound
# ‖∂L/∂h_{l-1}‖ ≤ max σ' · ‖W_l‖₂ · ‖∂L/∂h_l‖.  With BN before the activation the backward
# pass also goes through BN's Jacobian (about 1/std of the batch), so no such bound is used.
MAX_DERIVATIVE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}

# Yang et al. 2019 (A Mean Field Theory of Batch Normalization): at init, a deep ReLU net with
# BN before each ReLU multiplies the backpropagated gradient norm by sqrt(π/(π−1)) per layer
# (their gradient explosion; Theorem 3.10: the squared norm grows as β^L with β decreasing to
# π/(π−1) as the batch grows, so at a finite batch the factor is somewhat larger).  Their
# assumptions: gradient independence, ε = 0, γ = 1, β = 0, layers near the BSB1 fixed point.
YANG_FACTOR = math.sqrt(math.pi / (math.pi - 1))


def build_net(depth: int, activation: str, width: int, in_features: int, out_features: int = 10,
              init_gain: float = 1.0) -> nn.Module:
    """A plain :func:`reslab.models.mlp.mlp` with ``depth`` hidden layers, ``activation``
    one of sigmoid, tanh, relu, relu+bn ("+bn" = BatchNorm before the activation),
    He-initialised; every Linear weight is then multiplied by ``init_gain`` (1 = He init)."""
    from reslab.models.mlp import mlp

    net = mlp(depth, width, residual=False, batchnorm=activation.endswith("+bn"),
              activation=activation.removesuffix("+bn"), in_features=in_features, out_features=out_features)
    if init_gain != 1.0:
        with torch.no_grad():
            for m in linears(net):
                m.weight.mul_(init_gain)
    return net


def check_net_config(cfg) -> None:
    """The checks every fully connected experiment's config shares (seeds and threads are
    checked by :class:`reslab.experiments.base.ExperimentConfig`)."""
    if not cfg.depths or min(cfg.depths) < 1:
        raise ReslabError(f"every depth (hidden layers) must be >= 1, got {cfg.depths}")
    if not (math.isfinite(cfg.init_gain) and cfg.init_gain > 0):
        raise ReslabError(f"init_gain must be a finite number > 0, got {cfg.init_gain}")
    if cfg.dataset not in DATASETS:
        raise ReslabError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(DATASETS)}")
    for name in ("width", "n_images", "batch"):
        if getattr(cfg, name) < 1:
            raise ReslabError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.batch > cfg.n_images:
        raise ReslabError(f"batch ({cfg.batch}) must not exceed n_images ({cfg.n_images})")
    if cfg.steps < 0 or cfg.lr <= 0 or not 0 <= cfg.momentum < 1:
        raise ReslabError(f"need steps >= 0, lr > 0, 0 <= momentum < 1; got {cfg.steps}, {cfg.lr}, {cfg.momentum}")


def linears(net: nn.Module) -> list[nn.Linear]:
    """The weighted layers, in forward order (registration order of a sequential net)."""
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def weight_grad_norms(net: nn.Module) -> list[float]:
    """Frobenius norm of each Linear weight's gradient, in forward order, summed in float64."""
    from reslab.probes import layer_grad_norms

    return list(layer_grad_norms(net).values())


def spectral_norms(layers: list[nn.Linear]) -> list[float]:
    """‖W‖₂, the largest singular value of each weight, in float64."""
    return [torch.linalg.matrix_norm(m.weight.detach().double(), ord=2).item() for m in layers]


class LayerOutputs:
    """Keeps each Linear layer's output ``h_l`` during a forward pass so that, after
    ``backward()``, :meth:`grad_norms` gives ‖∂L/∂h_l‖ (the backpropagated gradient, over
    the whole batch).  Use as a context manager; :meth:`clear` before each forward pass."""

    def __init__(self, layers: list[nn.Linear], retain_grad: bool = True):
        self.layers, self.retain_grad = layers, retain_grad
        self.outputs: list[torch.Tensor] = []
        self._handles: list = []

    def __enter__(self) -> "LayerOutputs":
        self._handles = [m.register_forward_hook(self._hook) for m in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, module, inputs, output) -> None:  # returns None: the output is unchanged
        if self.retain_grad and output.requires_grad:
            output.retain_grad()
        self.outputs.append(output)

    def clear(self) -> None:
        self.outputs = []

    def grad_norms(self) -> list[float]:
        """‖∂L/∂h_l‖ for l = 0 .. depth, in float64 (NaN where no gradient was kept)."""
        return [o.grad.detach().double().norm().item() if o.grad is not None else float("nan")
                for o in self.outputs]

    def rms(self) -> list[float]:
        """Root mean square of each layer's output."""
        return [o.detach().double().pow(2).mean().sqrt().item() for o in self.outputs]


def load_flat(dataset: str, n_images: int, data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_images`` training images as raw 0–255 float32 rows (N, C*H*W), and labels."""
    from reslab.data import load_arrays

    if dataset == "synthetic":
        images, labels = load_arrays("synthetic", synthetic_size=n_images, synthetic_shape=(1, 28, 28),
                                     synthetic_classes=10, seed=0)
    else:
        images, labels = load_arrays(dataset, split="train", data_dir=data_dir)
    if len(images) < n_images:
        raise ReslabError(f"{dataset} has {len(images)} training images; n_images={n_images} is too many")
    x = torch.tensor(np.asarray(images[:n_images]), dtype=torch.float32).reshape(n_images, -1)  # a copy
    return x, torch.tensor(np.asarray(labels[:n_images]), dtype=torch.int64)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Pixels to zero mean, unit std (one mean and std over the whole slice)."""
    x = x / 255.0
    return (x - x.mean()) / x.std()


def num(v) -> float:
    """A number from results.json (None for NaN, "inf"/"-inf" strings) as a float."""
    return float("nan") if v is None else float(v)


def floats(values) -> np.ndarray:
    return np.array([num(v) for v in values], dtype=float)


def log_summary(values) -> dict[str, Any]:
    """Ratios summarised on a log scale, over seeds: :func:`stats.summary` of their log10
    (``mean``, ``half``, ``lo``, ``hi`` are in decades) plus ``geo`` = 10**mean, the
    geometric mean.  Ratios span tens of decades, so their arithmetic mean would be the
    largest seed's.  Zero or non-finite ratios are left out and counted in ``dropped``."""
    v = floats(values)
    ok = np.isfinite(v) & (v > 0)
    s = stats.summary(np.log10(v[ok]).tolist())
    s["geo"] = None if s["mean"] is None else 10 ** s["mean"]
    s["dropped"] = int((~ok).sum())
    return s


def decades(s: dict[str, Any]) -> str:
    """A :func:`log_summary` as text: ``3.2e-05 (×/÷ 1.4, 95% CI, n=3)``."""
    if s.get("geo") is None:
        return "n/a"
    extra = f", {s['dropped']} non-finite or zero left out" if s.get("dropped") else ""
    if s.get("half") is None:
        return f"{s['geo']:.2g} (n={s['n']}, no interval{extra})"
    return f"{s['geo']:.2g} (×/÷ {10 ** s['half']:.3g}, 95% CI, n={s['n']}{extra})"



def fit_factor(norms, start: int = 0) -> float:
    """Per-layer factor of backpropagated gradient norms toward the input: 10**-slope of a
    least-squares line through log10 ``norms[start:]`` over the layer index (NaN if any is
    not finite and > 0, or fewer than two)."""
    g = floats(norms)[start:]
    if g.size < 2 or not np.all(np.isfinite(g) & (g > 0)):
        return float("nan")
    return float(10 ** -np.polyfit(np.arange(g.size), np.log10(g), 1)[0])


def band_status(lo: float | None, hi: float | None, low: float | None = None,
                high: float | None = None) -> bool | None:
    """An interval ``[lo, hi]`` over seeds read against a criterion's band ``[low, high]``
    (either bound may be None: open): True if the interval lies inside the band, False if it
    lies wholly outside, None (not resolved) if it straddles a bound or there is no interval."""
    if lo is None or hi is None:
        return None
    low = -math.inf if low is None else low
    high = math.inf if high is None else high
    if low <= lo and hi <= high:
        return True
    if hi < low or lo > high:
        return False
    return None


def log_band(s: dict[str, Any], low: float | None = None, high: float | None = None) -> bool | None:
    """:func:`band_status` of a :func:`log_summary` (decades) against a band of ratios."""
    return band_status(s.get("lo"), s.get("hi"), None if low is None else math.log10(low),
                       None if high is None else math.log10(high))


def all_of(statuses) -> bool | None:
    """Several criteria that must all hold: False if any is False, True if all are True, else None."""
    statuses = list(statuses)
    if any(s is False for s in statuses):
        return False
    return True if statuses and all(s is True for s in statuses) else None
