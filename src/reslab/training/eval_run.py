"""``reslab eval``: a saved run or checkpoint on its validation or test split."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.training.config import from_dict
from reslab.training.data import build_data
from reslab.training.distributed import DistInfo, pick_device
from reslab.training.evaluate import evaluate_loader
from reslab.training.runpaths import RunPaths


def evaluate(path: str | Path, split: str | None = None, *, device: str = "auto", data_dir: str | None = None) -> dict:
    """Evaluate weights on a split; returns error, loss, per-class accuracy, confusion.

    ``path`` is anything :func:`reslab.load_model` accepts: a run directory, a reslab
    checkpoint, a ``.safetensors`` file, or ``SOURCE:MODEL``.  Weights trained by reslab use
    their run's data settings and normalisation (default split ``val``); imported weights
    use the normalisation on their card and only the test split (their authors trained
    on every training image, so reslab's validation images are not held out for them).
    """
    from reslab.training.setup import use_bf16
    from reslab.weights.load import load_model

    if split is not None and split not in ("val", "test"):
        raise ReslabError(f"--split {split!r} is not valid; valid: val, test")
    loaded = load_model(path)
    cfg = loaded.config
    if split is None:
        split = "val" if cfg is not None else "test"
    dev = pick_device(device, DistInfo())
    from reslab.data import get_info

    if cfg is not None:
        if data_dir is not None:
            cfg = from_dict({**cfg.to_dict(), "data_dir": data_dir})
        data = build_data(cfg, dev, DistInfo())
        loader = data.val_loader if split == "val" else data.test_loader
        if loader is None:
            raise ReslabError(f"{loaded.path}: the run held out no validation images (val_size=0); use --split test")
        num_classes, bf16, dataset, channels_last = data.num_classes, use_bf16(cfg, dev), cfg.dataset, cfg.channels_last
    else:
        from reslab.data import DeviceLoader, load_arrays

        card = loaded.card
        if split == "val":
            raise ReslabError(f"{path}: imported weights ({card.source}) were trained on all of {card.dataset}'s "
                              "training images, so reslab's validation split is not held out for them; use --split test")
        images, labels = load_arrays(card.dataset, "test", data_dir)
        num_classes, bf16, dataset, channels_last = get_info(card.dataset).num_classes, False, card.dataset, True
        if loaded.arch.get("num_classes") != num_classes:
            raise ReslabError(f"{path}: a {loaded.arch.get('num_classes')}-class model cannot be scored on "
                              f"{card.dataset} ({num_classes} classes)")
        loader = DeviceLoader(images, labels, 256, device=dev, train=False, mean=card.mean, std=card.std,
                              channels_last=True)
    model = loaded.model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    result = evaluate_loader(model, loader.epoch(0), num_classes, dev, bf16)
    result.update(split=split, checkpoint=str(loaded.path), iteration=loaded.iteration, model=loaded.arch["model"],
                  dataset=dataset, source=loaded.card.source,
                  class_names=list(get_info(dataset).class_names or [str(i) for i in range(num_classes)]))
    return result


def plot_confusion(result: dict, out: Path) -> Path:
    import numpy as np

    from reslab.render import save_figure, subplots

    cm = np.array(result["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    names = result["class_names"]
    fig, ax = subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['model']} on {result['dataset']} ({result['split']}): error {result['error']:.2%}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def write_report(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = RunPaths(out_dir).eval_json(result['split'])
    atomic_write(js, json.dumps(result, indent=1) + "\n")
    return js, plot_confusion(result, RunPaths(out_dir).confusion(result['split']))
