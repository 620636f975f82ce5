"""The reference: a CIFAR training pipeline written the way typical CIFAR repositories write it.

What "typical" means here (kuangliu/pytorch-cifar, akamaster/pytorch_resnet_cifar10 and
their many forks):

- the dataset is a list of uint8 HWC images (the CIFAR pickles' layout), and each sample is
  transformed on its own in ``__getitem__``: pad 4 (zeros), random 32x32 crop, random
  horizontal flip, to a float CHW tensor, normalise; what torchvision's ``RandomCrop(32,
  padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()`` and ``Normalize`` do, written by
  hand (no torchvision here);
- ``torch.utils.data.DataLoader(batch_size=128, shuffle=True, num_workers=2)``;
- an eager fp32 model in the default (NCHW) memory format: the same reslab architecture,
  so only the pipeline differs;
- SGD (momentum 0.9, weight decay 5e-4 as in those repositories), cross-entropy;
- the usual loop: ``zero_grad``, forward, loss, ``backward``, ``step``, then ``loss.item()``
  and the number of correct predictions pulled to Python every step for the progress line.

No flush-to-zero, no thread tuning: torch's defaults.  Import it, or run it alone:

    PYTHONPATH=src .venv/bin/python benchmarks/reference_pipeline.py --model resnet20
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

import reslab
from reslab.data import make_synthetic

PAD = 4  # RandomCrop(32, padding=4)


class CifarLikeDataset(torch.utils.data.Dataset):
    """uint8 images (N, H, W, C) + labels; one augmented, normalised CHW float sample per call."""

    def __init__(self, images_nhwc: np.ndarray, labels: np.ndarray, mean, std, train: bool = True):
        self.images, self.labels, self.train = images_nhwc, labels, train
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]  # (H, W, C) uint8
        h, w = img.shape[:2]
        if self.train:
            padded = np.pad(img, ((PAD, PAD), (PAD, PAD), (0, 0)))  # zero padding, like RandomCrop
            oy, ox = random.randint(0, 2 * PAD), random.randint(0, 2 * PAD)
            img = padded[oy:oy + h, ox:ox + w]
            if random.random() < 0.5:
                img = img[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255)  # ToTensor
        return (x - self.mean) / self.std, int(self.labels[i])  # Normalize


def make_pipeline(model_name: str, images_nchw: np.ndarray, labels: np.ndarray, *, batch_size: int = 128,
                  num_workers: int = 2, lr: float = 0.1, weight_decay: float = 5e-4, seed: int = 0,
                  device: str = "cpu"):
    """(loader, model, optimizer, criterion) for uint8 NCHW ``images_nchw`` (stored HWC, as CIFAR's are)."""
    torch.manual_seed(seed)
    random.seed(seed)
    hwc = np.ascontiguousarray(images_nchw.transpose(0, 2, 3, 1))
    mean = tuple(float(m) for m in hwc.reshape(-1, hwc.shape[-1]).mean(0) / 255)
    std = tuple(float(s) for s in hwc.reshape(-1, hwc.shape[-1]).std(0) / 255)
    ds = CifarLikeDataset(hwc, labels, mean, std)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                         drop_last=True)
    model = reslab.create_model(model_name, num_classes=int(labels.max()) + 1, in_channels=hwc.shape[-1]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    return loader, model, opt, nn.CrossEntropyLoss()


def window_rates(model_name: str, images_nchw: np.ndarray, labels: np.ndarray, *, windows: int = 5,
                 steps_per_window: int = 10, warmup_steps: int = 10, batch_size: int = 128,
                 num_workers: int = 2, device: str = "cpu") -> list[float]:
    """Train for ``warmup_steps`` + ``windows`` x ``steps_per_window`` steps (new epochs as
    needed, as a training script would) and return each window's images/s.  The clock
    includes waiting for the DataLoader, as a real run's does (and, on a GPU, the host-to-device
    copy; the per-step ``.item()`` calls synchronise, as they do in those scripts)."""
    loader, model, opt, criterion = make_pipeline(model_name, images_nchw, labels, batch_size=batch_size,
                                                  num_workers=num_workers, device=device)
    model.train()
    total = warmup_steps + windows * steps_per_window
    rates: list[float] = []
    step, correct, seen, train_loss = 0, 0, 0, 0.0
    t0 = time.perf_counter()
    while step < total:
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            opt.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            opt.step()
            train_loss += loss.item()
            correct += outputs.max(1)[1].eq(targets).sum().item()
            seen += targets.size(0)
            step += 1
            if step == warmup_steps:
                t0 = time.perf_counter()
            elif step > warmup_steps and (step - warmup_steps) % steps_per_window == 0:
                now = time.perf_counter()
                rates.append(steps_per_window * batch_size / (now - t0))
                t0 = now
            if step >= total:
                break
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description="Time the reference CIFAR pipeline alone (images/s per window).")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--images", type=int, default=10000, help="synthetic CIFAR-shaped training images")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="SGD steps per timed window")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader num_workers")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    images, labels = make_synthetic("train", args.images)
    rates = window_rates(args.model, images, labels, windows=args.windows, steps_per_window=args.steps,
                         num_workers=args.workers, device=args.device)
    print(f"{args.model}: median {statistics.median(rates):.1f} images/s over {len(rates)} windows "
          f"({', '.join(f'{r:.1f}' for r in rates)})")


if __name__ == "__main__":
    main()
