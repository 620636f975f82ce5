"""``reslab eval``: a saved run or checkpoint on its validation or test split."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reslab.errors import ReslabError
from reslab.training import checkpoint as ckpt
from reslab.training.config import from_dict
from reslab.training.data import build_data
from reslab.training.distributed import DistInfo, pick_device
from reslab.training.evaluate import evaluate_loader


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory's best (else latest) checkpoint."""
    p = Path(path)
    if p.is_dir():
        for name in (ckpt.BEST, ckpt.LATEST):
            if (p / "checkpoints" / name).is_file():
                return p / "checkpoints" / name
        raise ReslabError(f"{p}: no checkpoints/{ckpt.BEST} or checkpoints/{ckpt.LATEST}; is it a reslab run directory?")
    if not p.is_file():
        raise ReslabError(f"{p}: no such run directory or checkpoint file")
    return p


def evaluate(path: str | Path, split: str = "val", *, device: str = "auto", data_dir: str | None = None) -> dict:
    """Evaluate a run directory or checkpoint; returns error, loss, per-class accuracy, confusion."""
    from reslab.training.loop import build_model, use_bf16

    if split not in ("val", "test"):
        raise ReslabError(f"--split {split!r} is not valid; valid: val, test")
    path = find_checkpoint(path)
    state = ckpt.load(path)
    cfg = from_dict(state["config"])
    if data_dir is not None:
        cfg = from_dict({**cfg.to_dict(), "data_dir": data_dir})
    dev = pick_device(device, DistInfo())
    data = build_data(cfg, dev, DistInfo())
    model = build_model(cfg, data).to(dev)
    model.load_state_dict(state["model"])
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = data.val_loader if split == "val" else data.test_loader
    if loader is None:
        raise ReslabError(f"{path}: the run held out no validation images (val_size=0); use --split test")
    result = evaluate_loader(model, loader.epoch(0), data.num_classes, dev, use_bf16(cfg, dev))
    from reslab.data import get_info

    result.update(split=split, checkpoint=str(path), iteration=state.get("iteration"), model=cfg.model,
                  dataset=cfg.dataset, class_names=list(get_info(cfg.dataset).class_names or
                                                        [str(i) for i in range(data.num_classes)]))
    return result


def plot_confusion(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.array(result["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    names = result["class_names"]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['model']} on {result['dataset']} ({result['split']}): error {result['error']:.2%}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / f"eval_{result['split']}.json"
    js.write_text(json.dumps(result, indent=1) + "\n")
    return js, plot_confusion(result, out_dir / f"confusion_{result['split']}.png")
