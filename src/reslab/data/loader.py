"""A data loader that keeps the whole dataset on the training device.

CIFAR-10 is 150 MB as uint8 and Fashion-MNIST 47 MB, so both fit on any accelerator (or
in RAM) several times over.  Keeping them there as uint8 and building each batch with a
handful of vectorised tensor ops (one gather does the random crop *and* the flip) is far
cheaper than a ``torch.utils.data.DataLoader`` that transforms one PIL image or tensor
at a time in worker processes, and it is exactly reproducible.

Augmentation (He et al. 2016 §4.2, CIFAR-10): "4 pixels are padded on each side, and a
32x32 crop is randomly sampled from the padded image or its horizontal flip".  Padding
is with zero (black) pixels before normalisation, as torchvision's ``RandomCrop(32,
padding=4)`` does.

Determinism: the permutation and every crop offset and flip of an epoch come from one
``torch.Generator`` (on the CPU, so they are the same on every device) seeded from
``(seed, epoch)`` only; batch ``i`` of an epoch is therefore the same whether the epoch
is run from the start or resumed at ``start=i``, and the global RNG is never touched.
"""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from reslab.errors import ReslabError

AUG_PAD = 4  # pixels of zero padding before the random crop (He et al. 2016 §4.2)
# The largest pad_to: 16x a CIFAR image's side (ImageNet's 224 fits); beyond it one batch of
# padded images alone would take gigabytes.
MAX_PAD_TO = 512


def channel_stats(images) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel (mean, std) of uint8 images (N, C, H, W), in [0, 1] pixel units.

    Computed from a 256-bin histogram per channel, so it needs no float copy of the data
    and is exact (population std).  Accepts a numpy array or a tensor on any device.
    """
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[0] == 0:
        raise ReslabError(f"channel_stats needs non-empty uint8 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    levels = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    step = max(1, (1 << 24) // max(1, x[0, 0].numel()))  # ~16M pixels per bincount call
    for c in range(x.shape[1]):
        counts = torch.zeros(256, dtype=torch.float64)
        for i in range(0, x.shape[0], step):
            counts += torch.bincount(x[i:i + step, c].reshape(-1), minlength=256).to("cpu", torch.float64)
        total = counts.sum()
        mean = (counts * levels).sum() / total
        var = (counts * levels * levels).sum() / total - mean * mean
        means.append(float(mean) / 255.0)
        stds.append(math.sqrt(max(float(var), 0.0)) / 255.0)
    return tuple(means), tuple(stds)


def crop_and_flip(padded: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                  size: tuple[int, int]) -> torch.Tensor:
    """Gather ``padded[idx[b], :, oy:oy+H, ox:ox+W]`` (mirrored left-right where ``flips[b]``).

    ``padded`` is uint8 (N, C, Hp, Wp), ideally stored channels-last (otherwise it is
    converted, a copy); ``offsets`` is (B, 2) = (oy, ox).  One gather of whole pixels
    (all C channels at once) does the crop and the flip for the batch: a flipped crop
    is the same window read with its columns reversed.  The result is NCHW-shaped with
    channels-last strides, the layout convolutions prefer.
    """
    n, c, hp, wp = padded.shape
    h, w = size
    dev = padded.device
    nhwc = padded.permute(0, 2, 3, 1)
    if not nhwc.is_contiguous():
        nhwc = nhwc.contiguous()
    ar_w = torch.arange(w, device=dev)
    rows = offsets[:, 0:1] + torch.arange(h, device=dev)  # (B, H)
    cols = offsets[:, 1:2] + torch.where(flips[:, None], w - 1 - ar_w, ar_w)  # (B, W)
    pixel = (idx[:, None, None] * (hp * wp) + (rows * wp)[:, :, None] + cols[:, None, :]).reshape(-1)
    # Pixel-major gather: B*H*W indices instead of B*C*H*W; for RGB this took a third
    # of the CPU time of an element-wise gather when measured.
    out = nhwc.reshape(n * hp * wp, c).index_select(0, pixel)
    return out.view(len(idx), h, w, c).permute(0, 3, 1, 2)


class EpochPlan(NamedTuple):
    """This rank's sample order for one epoch and, when augmenting, each sample's crop
    offset (oy, ox) into the padded image and flip flag (all on the loader's device)."""

    order: torch.Tensor
    offsets: torch.Tensor | None
    flips: torch.Tensor | None


def _epoch_seed(seed: int, epoch: int) -> int:
    # SeedSequence mixes (seed, epoch) so nearby pairs give unrelated streams.
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch) & 0xFFFFFFFFFFFFFFFF])
    return int(state.generate_state(1, dtype=np.uint64)[0])


def check_pad_to(pad_to) -> None:
    """``pad_to`` is None (no padding) or an image side in 1..MAX_PAD_TO; one line otherwise."""
    if pad_to is not None and (type(pad_to) is not int or not 1 <= pad_to <= MAX_PAD_TO):
        raise ReslabError(f"pad_to must be an image side in 1..{MAX_PAD_TO} pixels (or unset), got {str(pad_to)[:20]}")


def _checked(images, labels, batch_size: int, pad_to: int | None, mean: Sequence[float] | None,
             std: Sequence[float] | None, rank: int, world_size: int):
    """:class:`DeviceLoader`'s arguments checked: ``(images, labels, mean, std)``, images and
    labels as tensors, mean and std as per-channel float tuples (from the images where not given)."""
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ReslabError(f"DeviceLoader needs uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or len(labels) != len(images):
        raise ReslabError(f"DeviceLoader got {len(images)} images but labels of shape {tuple(labels.shape)}")
    if batch_size < 1:
        raise ReslabError(f"batch size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ReslabError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    _, c, h, w = images.shape
    check_pad_to(pad_to)
    if pad_to is not None and (pad_to < h or pad_to < w):
        raise ReslabError(f"pad_to={pad_to} is smaller than the {h}x{w} images")

    if mean is None or std is None:
        stats = channel_stats(images)
        mean = stats[0] if mean is None else mean
        # A constant channel has std 0; leave it unscaled rather than divide by zero.
        std = tuple(s if s > 0 else 1.0 for s in stats[1]) if std is None else std
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != c or len(std) != c or min(std) <= 0:
        raise ReslabError(f"mean/std need {c} values (one per channel) with std > 0, got mean={mean}, std={std}")
    return images, labels, mean, std


class DeviceLoader:
    """Batches of normalised (and, for training, augmented) images from a device-resident dataset.

    ``images`` uint8 (N, C, H, W) and ``labels`` (N,) may be numpy arrays or tensors;
    both are copied to ``device`` once.  ``pad_to`` zero-pads every image, centred, to
    a square of that size (28 -> 32 for Fashion-MNIST).  ``mean``/``std`` are per-channel
    in [0, 1] units; when omitted they are computed from *these* images (pass the
    training split's stats to an evaluation loader).

    Training (``train=True``): a fresh permutation per epoch; with ``augment`` a random
    crop after 4-pixel zero padding and a random horizontal flip; ``drop_last`` drops
    the final partial batch.  Evaluation: the stored order, no augmentation, the last
    partial batch kept.

    DDP: with ``world_size > 1`` every rank draws the same permutation and takes every
    ``world_size``-th sample from position ``rank``; in training the remainder is
    dropped so all ranks run the same number of batches.  ``batch_size`` is per rank.
    """

    def __init__(self, images, labels, batch_size: int, *, device="cpu", train: bool = True,
                 augment: bool = True, pad_to: int | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, channels_last: bool = True, seed: int = 0,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1, dtype=torch.float32):
        images, labels, mean, std = _checked(images, labels, batch_size, pad_to, mean, std, rank, world_size)
        n, c, h, w = images.shape

        self.device = torch.device(device)
        self.train = bool(train)
        self.augment = bool(augment) and self.train
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last) and self.train
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed = int(seed)
        self.channels_last = bool(channels_last)
        self.dtype = dtype
        self.mean, self.std = mean, std
        self.num_samples = int(n)  # images held (all ranks see the same dataset)
        out = pad_to or h, pad_to or w
        self.image_shape = (c, *out)  # shape of one output image
        self._epoch = 0

        # Centre the pad_to padding (extra pixel right/bottom when odd); add the crop
        # border once here instead of padding every batch.
        border = AUG_PAD if self.augment else 0
        top, left = (out[0] - h) // 2, (out[1] - w) // 2
        pads = (left + border, out[1] - w - left + border, top + border, out[0] - h - top + border)
        images = images.to(self.device)
        # Stored channels-last (N, H, W, C in memory): batches are gathered pixel by
        # pixel, and come out in the layout the model wants.
        self._data = (F.pad(images, pads) if any(pads) else images).contiguous(memory_format=torch.channels_last)
        self._labels = labels.to(device=self.device, dtype=torch.int64)
        # x_norm = (u8 / 255 - mean) / std = u8 * scale + shift, precomputed per channel.
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t

        # samples this rank yields per epoch (before drop_last)
        shard = n // self.world_size if self.train else len(range(self.rank, n, self.world_size))
        self._num_batches = shard // self.batch_size if self.drop_last else math.ceil(shard / self.batch_size)

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return self._num_batches

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that ``iter(loader)`` runs (like DistributedSampler.set_epoch)."""
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(self._epoch)

    def plan(self, epoch: int) -> EpochPlan:
        """This rank's order, crop offsets and flips for ``epoch``; a function of (seed, epoch)."""
        n = self.num_samples
        if not self.train:
            return EpochPlan(torch.arange(self.rank, n, self.world_size, device=self.device), None, None)
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        order = torch.randperm(n, generator=g)
        offsets = flips = None
        if self.augment:
            offsets = torch.randint(0, 2 * AUG_PAD + 1, (n, 2), generator=g)
            flips = torch.randint(0, 2, (n,), generator=g).bool()
        # Same permutation on every rank; drop the tail so shards are equal, then stride.
        keep = slice(self.rank, (n // self.world_size) * self.world_size, self.world_size)
        order = order[keep].to(self.device)
        if self.augment:
            offsets, flips = offsets[keep].to(self.device), flips[keep].to(self.device)
        return EpochPlan(order, offsets, flips)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches of ``epoch`` from batch index ``start`` (for exact resume).

        ``x`` is ``dtype`` (B, C, H, W), normalised, channels-last if requested; ``y`` int64 (B,).
        """
        if not 0 <= start <= len(self):
            raise ReslabError(f"start batch must be in [0, {len(self)}], got {start}")
        return self._batches(self.plan(epoch), start)

    def _batches(self, plan: EpochPlan, start: int):
        h, w = self.image_shape[1:]
        for b in range(start, len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, len(plan.order)))
            idx = plan.order[sl]
            if self.augment:
                u8 = crop_and_flip(self._data, idx, plan.offsets[sl], plan.flips[sl], (h, w))
            else:  # whole images: one row of H*W*C bytes each
                c = self.image_shape[0]
                u8 = self._data.permute(0, 2, 3, 1).reshape(self.num_samples, -1).index_select(0, idx)
                u8 = u8.view(len(idx), h, w, c).permute(0, 3, 1, 2)
            yield self._normalise(u8), self._labels.index_select(0, idx)

    def _normalise(self, u8: torch.Tensor) -> torch.Tensor:
        # uint8 * float promotes inside the kernel: no separate float copy of the batch.
        x = torch.addcmul(self._shift, u8, self._scale)
        if self.dtype != torch.float32:
            x = x.to(self.dtype)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)
