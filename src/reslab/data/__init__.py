"""Datasets and the device-resident loader.

* :func:`load_arrays` -- one split of a dataset as uint8 (N, C, H, W) images and int64
  labels, found locally (``--data-dir``, ``$RESLAB_DATA``, the system copy, the user
  cache) or downloaded and checksummed; see :mod:`reslab.data.store`.
* :data:`DATASETS` / :func:`get_info` -- shape, classes, sizes and checksums of each dataset.
* :func:`make_splits` -- the deterministic train/validation split (45k/5k on CIFAR-10,
  He et al. 2016 §4.2).
* :class:`DeviceLoader` -- normalised, augmented batches built on the device, with exact
  resume and DDP sharding; :func:`channel_stats` for its mean/std.
"""

from reslab.data.datasets import load_arrays, make_splits, make_synthetic
from reslab.data.loader import DeviceLoader, EpochPlan, channel_stats, crop_and_flip
from reslab.data.registry import DATASETS, SPLITS, DatasetInfo, FileSpec, get_info

__all__ = [
    "DATASETS", "SPLITS", "DatasetInfo", "DeviceLoader", "EpochPlan", "FileSpec", "channel_stats",
    "crop_and_flip", "get_info", "load_arrays", "make_splits", "make_synthetic",
]
