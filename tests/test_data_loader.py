"""DeviceLoader: augmentation correctness, determinism, exact resume, DDP sharding, eval mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reslab.data import DeviceLoader, channel_stats, crop_and_flip, load_arrays, make_splits
from reslab.data.loader import AUG_PAD
from reslab.errors import ReslabError


def unique_images(n=2, c=3, h=6, w=6) -> torch.Tensor:
    """Every pixel a distinct non-zero value, so a window is identified by its contents."""
    assert n * c * h * w < 256
    return (torch.arange(n * c * h * w, dtype=torch.int64) + 1).to(torch.uint8).reshape(n, c, h, w)


def raw_loader(images, **kw) -> DeviceLoader:
    """mean 0, std 1/255: the loader's output equals the uint8 pixel values exactly."""
    c = images.shape[1]
    kw.setdefault("batch_size", len(images))
    return DeviceLoader(images, torch.arange(len(images)), mean=(0.0,) * c, std=(1 / 255,) * c, **kw)


def test_crop_and_flip_known_windows():
    img = unique_images(n=2)
    padded = F.pad(img, (AUG_PAD,) * 4)
    idx = torch.tensor([0, 1, 1, 0])
    offsets = torch.tensor([[AUG_PAD, AUG_PAD], [AUG_PAD, AUG_PAD], [0, 0], [8, 3]])
    flips = torch.tensor([False, True, False, True])
    out = crop_and_flip(padded.contiguous(), idx, offsets, flips, (6, 6))
    assert out.shape == (4, 3, 6, 6) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out[0], img[0])                        # centre crop = original
    assert torch.equal(out[1], torch.flip(img[1], dims=[-1]))  # centre + flip = mirrored original
    assert torch.equal(out[2], padded[1, :, 0:6, 0:6])         # top-left window ...
    assert (out[2, :, :4, :] == 0).all() and (out[2, :, 4:, 4:] == img[1, :, :2, :2]).all()  # ... mostly padding
    assert torch.equal(out[3], torch.flip(padded[0, :, 8:14, 3:9], dims=[-1]))


def test_loader_batches_match_plan_reference():
    img = unique_images(n=3, c=3, h=5, w=5)
    loader = raw_loader(img, batch_size=2, drop_last=False, seed=7)
    plan = loader.plan(4)
    padded = F.pad(img, (AUG_PAD,) * 4)
    batches = list(loader.epoch(4))
    assert [len(b[1]) for b in batches] == [2, 1]
    x = torch.cat([b[0] for b in batches]).round().to(torch.uint8)
    for k, n in enumerate(plan.order.tolist()):  # per-sample reference, written the slow way
        oy, ox = plan.offsets[k].tolist()
        ref = padded[n, :, oy:oy + 5, ox:ox + 5]
        if plan.flips[k]:
            ref = ref.flip(-1)
        assert torch.equal(x[k], ref)
    assert torch.equal(torch.cat([b[1] for b in batches]), plan.order)


def test_augmentation_is_random_and_covers_range():
    loader = raw_loader(unique_images(n=2), seed=1)
    plan = torch.stack([loader.plan(e).offsets for e in range(200)]).reshape(-1, 2)
    flips = torch.stack([loader.plan(e).flips for e in range(200)]).float()
    assert set(plan.unique().tolist()) == set(range(2 * AUG_PAD + 1))
    assert 0.4 < flips.mean().item() < 0.6


def test_output_shapes_dtype_layout():
    x = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    loader = DeviceLoader(x, torch.zeros(20, dtype=torch.int64), 8, pad_to=32)
    assert len(loader) == 2 and loader.num_samples == 20 and loader.batch_size == 8
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 1, 32, 32) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert xb.is_contiguous(memory_format=torch.channels_last)
    half = DeviceLoader(x, torch.zeros(20), 8, dtype=torch.bfloat16, channels_last=False, train=False)
    xb = next(iter(half))[0]
    assert xb.dtype == torch.bfloat16 and xb.is_contiguous()


def test_pad_to_centres_and_normalises():
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    loader = DeviceLoader(x, torch.zeros(2), 2, pad_to=32, train=False, mean=(0.5,), std=(0.25,))
    xb = next(iter(loader))[0][0, 0]
    assert xb.shape == (32, 32)
    assert torch.allclose(xb[2:30, 2:30], torch.tensor(2.0))  # (1 - 0.5) / 0.25
    assert torch.allclose(xb[:2], torch.tensor(-2.0)) and torch.allclose(xb[:, 30:], torch.tensor(-2.0))


def test_default_stats_come_from_these_images():
    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    loader = DeviceLoader(x, torch.zeros(50), 50, train=False)
    xb = next(iter(loader))[0]
    assert torch.allclose(xb.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(xb.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5)


def test_channel_stats_exact():
    x = np.random.default_rng(0).integers(0, 256, size=(30, 3, 5, 7), dtype=np.uint8)
    mean, std = channel_stats(x)
    f = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, f.std(axis=(0, 2, 3)), rtol=1e-9)


def test_seed_determinism_and_resume():
    x, y = load_arrays("synthetic", "train", synthetic_size=40, synthetic_shape=(3, 8, 8))
    a = DeviceLoader(x, y, 6, seed=3)
    b = DeviceLoader(x, y, 6, seed=3)
    ea, eb = list(a.epoch(2)), list(b.epoch(2))
    assert len(ea) == len(a) == 6
    for (xa, ya), (xb, yb) in zip(ea, eb):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # Resume mid-epoch: the same batches as an uninterrupted run.
    for (xa, ya), (xr, yr) in zip(ea[4:], a.epoch(2, start=4)):
        assert torch.equal(xa, xr) and torch.equal(ya, yr)
    assert len(list(a.epoch(2, start=6))) == 0
    with pytest.raises(ReslabError):
        a.epoch(2, start=7)
    # Other epochs and other seeds differ.
    assert not torch.equal(ea[0][0], next(iter(a.epoch(3)))[0])
    assert not torch.equal(ea[0][0], next(iter(DeviceLoader(x, y, 6, seed=4).epoch(2)))[0])
    a.set_epoch(2)
    assert torch.equal(next(iter(a))[0], ea[0][0])


def test_global_rng_untouched():
    torch.manual_seed(123)
    np.random.seed(5)
    state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    loader = DeviceLoader(unique_images(), torch.zeros(2), 1)
    for _ in loader.epoch(0):
        pass
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)


@pytest.mark.parametrize("train", [True, False])
def test_ddp_shards_disjoint_and_covering(train):
    n, ws, bs = 50, 3, 4
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    ids = torch.arange(n)
    loaders = [DeviceLoader(x, ids, bs, train=train, rank=r, world_size=ws, seed=9, mean=(0,), std=(1,),
                            drop_last=False) for r in range(ws)]
    seen = [torch.cat([yb for _, yb in ld.epoch(1)]) for ld in loaders]
    flat = torch.cat(seen)
    assert len(set(flat.tolist())) == len(flat)  # disjoint
    if train:
        assert len({len(ld) for ld in loaders}) == 1  # every rank runs the same number of steps
        assert len(flat) == (n // ws) * ws  # remainder dropped
        perm = DeviceLoader(x, ids, bs, seed=9, mean=(0,), std=(1,)).plan(1).order
        assert set(flat.tolist()) == set(perm[: (n // ws) * ws].tolist())  # the same permutation on all ranks
    else:
        assert sorted(flat.tolist()) == list(range(n))  # eval covers everything exactly once


def test_ddp_drop_last_same_batch_count():
    x = torch.zeros(103, 1, 2, 2, dtype=torch.uint8)
    lens = [len(DeviceLoader(x, torch.zeros(103), 10, rank=r, world_size=4)) for r in range(4)]
    assert lens == [2, 2, 2, 2]  # 103 // 4 = 25 per rank -> 2 full batches of 10


def test_eval_mode_fixed_order_no_augmentation_keeps_last_batch():
    img = unique_images(n=10, c=1, h=4, w=4)
    loader = raw_loader(img, batch_size=4, train=False, augment=True)
    batches = list(loader)
    assert [len(yb) for _, yb in batches] == [4, 4, 2] == [len(xb) for xb, _ in batches]
    assert torch.equal(torch.cat([yb for _, yb in batches]), torch.arange(10))
    assert torch.equal(torch.cat([xb for xb, _ in batches]).round().to(torch.uint8), img)
    assert torch.equal(torch.cat([xb for xb, _ in loader.epoch(5)]).round().to(torch.uint8), img)


def test_train_without_augment_is_plain_shuffle():
    img = unique_images(n=10, c=1, h=4, w=4)
    loader = raw_loader(img, batch_size=5, augment=False)
    xb, yb = next(iter(loader))
    assert torch.equal(xb.round().to(torch.uint8), img[yb])


@pytest.mark.parametrize("kwargs, match", [
    (dict(mean=(0.5, 0.5)), "one per channel"),
    (dict(std=(0.0,)), "std > 0"),
    (dict(pad_to=3), "smaller than"),
    (dict(batch_size=0), "batch size"),
    (dict(rank=2, world_size=2), "rank must be"),
])
def test_loader_rejects_bad_options(kwargs, match):
    args = dict(batch_size=2)
    args.update(kwargs)
    with pytest.raises(ReslabError, match=match):
        DeviceLoader(torch.zeros(4, 1, 4, 4, dtype=torch.uint8), torch.zeros(4), **args)


def test_make_splits_deterministic_disjoint():
    tr, va = make_splits(50000, 5000, seed=0)
    assert len(tr) == 45000 and len(va) == 5000  # He et al. 2016 §4.2
    assert len(np.intersect1d(tr, va)) == 0 and len(np.union1d(tr, va)) == 50000
    tr2, va2 = make_splits(50000, 5000, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(va, make_splits(50000, 5000, seed=1)[1])
    assert len(make_splits(10, 0, 0)[1]) == 0
    with pytest.raises(ReslabError, match="val size"):
        make_splits(10, 11, 0)


def test_synthetic_dataset():
    x, y = load_arrays("synthetic", "train", synthetic_size=64, synthetic_shape=(1, 12, 12), synthetic_classes=4, seed=2)
    assert x.shape == (64, 1, 12, 12) and x.dtype == np.uint8 and y.dtype == np.int64
    assert set(y.tolist()) <= set(range(4))
    x2, _ = load_arrays("synthetic", "train", synthetic_size=64, synthetic_shape=(1, 12, 12), synthetic_classes=4, seed=2)
    assert np.array_equal(x, x2)
    xt, _ = load_arrays("synthetic", "test", synthetic_size=64, synthetic_shape=(1, 12, 12), synthetic_classes=4, seed=2)
    assert not np.array_equal(x, xt)
    # Learnable: each image is nearer its own class mean than any other class's.
    means = np.stack([x[y == c].reshape(-1, 144).mean(0) for c in range(4)])
    dist = ((xt.reshape(64, 1, 144) - means[None]) ** 2).sum(-1)
    _, yt = load_arrays("synthetic", "test", synthetic_size=64, synthetic_shape=(1, 12, 12), synthetic_classes=4, seed=2)
    assert (dist.argmin(1) == yt).mean() > 0.9
