"""The data a run trains on: train/validation split of the training set, the test set,
and a device-resident loader for each.  Normalisation uses the training split's stats."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reslab.training.config import TrainConfig
from reslab.training.distributed import DistInfo


@dataclass
class RunData:
    train_loader: object
    val_loader: object | None
    test_loader: object
    num_classes: int
    in_channels: int
    num_train: int
    num_val: int


def build_data(cfg: TrainConfig, device: torch.device, info: DistInfo) -> RunData:
    from reslab.data import DeviceLoader, channel_stats, get_info, load_arrays, make_splits

    ds = get_info(cfg.dataset)
    images, labels = load_arrays(cfg.dataset, "train", cfg.data_dir)
    test_images, test_labels = load_arrays(cfg.dataset, "test", cfg.data_dir)
    if cfg.test_subset is not None:
        test_images, test_labels = test_images[: cfg.test_subset], test_labels[: cfg.test_subset]
    val_size = ds.default_val_size if cfg.val_size is None else cfg.val_size
    train_idx, val_idx = make_splits(len(images), val_size, cfg.seed)
    if cfg.train_subset is not None:
        train_idx = train_idx[: cfg.train_subset]
    train_imgs, train_lbls = images[train_idx], labels[train_idx]
    mean, std = channel_stats(train_imgs)
    per_rank = cfg.batch_size // info.world_size
    common = dict(device=device, pad_to=cfg.pad_to, mean=mean, std=std, channels_last=cfg.channels_last)
    train_loader = DeviceLoader(train_imgs, train_lbls, per_rank, train=True, augment=cfg.augment, seed=cfg.seed,
                                rank=info.rank, world_size=info.world_size, **common)
    eval_batch = max(256, per_rank)
    val_loader = (DeviceLoader(images[val_idx], labels[val_idx], eval_batch, train=False, **common)
                  if len(val_idx) else None)
    test_loader = DeviceLoader(test_images, test_labels, eval_batch, train=False, **common)
    return RunData(train_loader, val_loader, test_loader, ds.num_classes, int(images.shape[1]),
                   len(train_idx), len(val_idx))
