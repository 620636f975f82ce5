"""He et al.'s constructed solution, measured: the trained plain-20 plus identity layers is a
plain-56 (:func:`reslab.models.deepen.deepen_plain`); its training error sits beside that of
the plain-56 the solver found from scratch, seed by seed.  No extra training.

Every net is measured the same way: BatchNorm in eval mode (running statistics, the only
mode in which the construction is exact), on the seed's own training images without
augmentation, one pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from reslab.experiments import base, sweep


def _train_images(cfg, seed: int, data_dir: str | None):
    from reslab.training.data import build_data
    from reslab.training.distributed import DistInfo

    tcfg = dataclasses.replace(sweep.train_config(cfg, "plain", min(cfg.depths), seed, data_dir), augment=False)
    return build_data(tcfg, torch.device("cpu"), DistInfo())


def _error(model, data) -> float:
    from reslab.training.evaluate import evaluate_loader

    return evaluate_loader(model, data.train_loader.epoch(0), data.num_classes, torch.device("cpu"))["error"]


def measure(cfg, ctx: base.Context) -> dict[str, Any]:
    """Per seed: training error of plain-LO, of the constructed plain-HI, of the plain-HI trained
    from scratch, and how far the constructed net's logits are from plain-LO's."""
    from reslab.models.deepen import deepen_plain
    from reslab.weights import load_model

    lo, hi = min(cfg.depths), max(cfg.depths)
    rows = []
    for seed in range(cfg.seeds):
        shallow = load_model(sweep.run_dir(ctx.out_dir, "plain", lo, seed)).model.eval()
        scratch = load_model(sweep.run_dir(ctx.out_dir, "plain", hi, seed)).model.eval()
        built = deepen_plain(shallow, hi).eval()
        data = _train_images(cfg, seed, ctx.data_dir)
        x, _ = next(iter(data.train_loader.epoch(0)))
        with torch.no_grad():
            ref, got = shallow(x), built(x)
        rows.append({"seed": seed, "shallow_train_error": _error(shallow, data),
                     "constructed_train_error": _error(built, data), "scratch_train_error": _error(scratch, data),
                     "max_logit_diff": (ref - got).abs().max().item(), "max_logit": ref.abs().max().item()})
    return {"shallow": f"plain{lo}", "deep": f"plain{hi}", "per_seed": rows,
            "how": "eval-mode BatchNorm, the seed's training images without augmentation, one pass"}
