"""Evaluation: error, loss, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn


def autocast_ctx(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


@torch.no_grad()
def evaluate_loader(model: nn.Module, batches, num_classes: int, device: torch.device, bf16: bool = False) -> dict:
    """Run ``model`` in eval mode over ``batches`` of ``(x, y)``; restore its mode after."""
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    for x, y in batches:
        with autocast_ctx(device, bf16):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        pred = logits.argmax(1)
        confusion += torch.bincount(y * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)
        n += y.numel()
    model.train(was_training)
    confusion = confusion.cpu()
    correct = confusion.diag().sum().item()
    per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1).double()).tolist()
    return {"error": 1 - correct / max(n, 1), "loss": loss_sum.item() / max(n, 1), "n": n,
            "per_class_accuracy": per_class, "confusion": confusion.tolist()}
