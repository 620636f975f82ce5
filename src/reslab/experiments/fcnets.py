"""Fully connected nets on flattened images: shared by vanishing and exploding.

Building the plain nets (:func:`build_net`), loading and normalising the flattened
images, per-layer weight-gradient norms, the small number helpers used to read numbers
back from results.json, and saving a figure.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reslab.errors import ReslabError

FLOAT32_TINY = 1.4e-45  # smallest float32 subnormal: where an underflowed ratio is clamped for log10


def build_net(depth: int, activation: str, width: int, in_features: int, out_features: int = 10,
              init_gain: float = 1.0) -> nn.Module:
    """A plain :func:`reslab.models.mlp.mlp` with ``depth`` hidden layers, ``activation``
    one of vanishing.ACTIVATIONS ("relu+bn" = ReLU with BatchNorm before it), He-initialised; every
    Linear weight is then multiplied by ``init_gain`` (1 = He init as is)."""
    from reslab.models.mlp import mlp

    net = mlp(depth, width, residual=False, batchnorm=activation.endswith("+bn"),
              activation=activation.removesuffix("+bn"), in_features=in_features, out_features=out_features)
    if init_gain != 1.0:
        with torch.no_grad():
            for m in linears(net):
                m.weight.mul_(init_gain)
    return net


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch CPU threads, then restore the old count.  These nets are small
    (width 200, batch 128): a second thread gains little, and on a shared 2-core machine
    under load two threads made the quick runs 5-30x slower than one (measured here)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def linears(net: nn.Module) -> list[nn.Linear]:
    """The weighted layers, in forward order (registration order of a sequential net)."""
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def weight_grad_norms(net: nn.Module) -> list[float]:
    """Frobenius norm of each Linear weight's gradient, in forward order, summed in float64."""
    from reslab.probes import layer_grad_norms

    return list(layer_grad_norms(net).values())


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


def mean_std(values) -> dict[str, float]:
    """mean ± std (ddof 0) of the ratios and of their log10 (zeros clamped at FLOAT32_TINY)."""
    v = floats(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "log10_mean": float("nan"),
                "log10_std": float("nan"), "n": 0, "underflow": 0}
    logs = np.log10(np.maximum(v, FLOAT32_TINY))
    return {"mean": float(v.mean()), "std": float(v.std()), "log10_mean": float(logs.mean()),
            "log10_std": float(logs.std()), "n": int(v.size), "underflow": int((v == 0).sum())}


def save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
