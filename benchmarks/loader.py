"""Loader throughput: reslab's DeviceLoader against a per-sample DataLoader, and against
ResNet-20 training, so the loader's share of a training step can be read off.

    PYTHONPATH=src .venv/bin/python benchmarks/loader.py [--device cpu] [--repeats 5]

Measures images/s in training mode (random crop after 4-px zero padding + horizontal
flip, He et al. 2016 §4.2) at batch 128:

1. DeviceLoader on Fashion-MNIST (28x28 zero-padded to 32x32), if installed;
2. DeviceLoader on CIFAR-shaped synthetic data (50,000 x 3 x 32 x 32);
3. torch.utils.data.DataLoader (num_workers=2) over a Dataset that pads, crops, flips
   and normalises one sample at a time, the usual way, on the same synthetic data;
4. ResNet-20 + SGD training steps on batches from (2).

Every figure is the median over ``--repeats`` timed repeats after a warm-up.  Not a test.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import reslab
from reslab.data import DeviceLoader, channel_stats, load_arrays

BATCH = 128


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_rate(run, images_per_run: int, repeats: int, device: torch.device) -> tuple[float, list[float]]:
    """Median images/s of ``run()`` over ``repeats`` timed calls (one untimed warm-up first)."""
    run()
    rates = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        run()
        sync(device)
        rates.append(images_per_run / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def bench_device_loader(images, labels, device, repeats, batches, **kw) -> float:
    mean, std = channel_stats(images)
    loader = DeviceLoader(images, labels, BATCH, device=device, train=True, augment=True, mean=mean, std=std, **kw)
    batches = min(batches, len(loader))
    state = {"epoch": 0}

    def run():
        state["epoch"] += 1  # a fresh permutation + augmentation plan each repeat
        for i, (x, y) in enumerate(loader.epoch(state["epoch"])):
            if i + 1 == batches:
                break
        x.sum().item()  # make sure the last batch really was computed

    rate, _ = median_rate(run, batches * BATCH, repeats, device)
    return rate


class PerSampleDataset(torch.utils.data.Dataset):
    """The usual style: one uint8 image at a time -> float, pad 4, random 32x32 crop,
    random horizontal flip, normalise (what RandomCrop + RandomHorizontalFlip + ToTensor
    + Normalize do, written out on tensors)."""

    def __init__(self, images, labels, mean, std):
        self.images, self.labels = torch.as_tensor(images), torch.as_tensor(labels)
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i].float().div_(255)
        img = F.pad(img, (4, 4, 4, 4))
        h, w = self.images.shape[2:]
        oy, ox = torch.randint(0, 9, (2,)).tolist()
        img = img[:, oy:oy + h, ox:ox + w]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return (img - self.mean) / self.std, self.labels[i]


def bench_dataloader(images, labels, repeats, batches) -> float:
    mean, std = channel_stats(images)
    dl = torch.utils.data.DataLoader(PerSampleDataset(images, labels, mean, std), batch_size=BATCH, shuffle=True,
                                     num_workers=2, drop_last=True, persistent_workers=True, prefetch_factor=4)

    def run():
        for i, (x, y) in enumerate(dl):
            if i + 1 == batches:
                break

    rate, _ = median_rate(run, batches * BATCH, repeats, torch.device("cpu"))
    del dl
    return rate


def bench_training(images, labels, device, repeats, steps) -> float:
    model = reslab.create_model("resnet20", in_channels=3).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    mean, std = channel_stats(images)
    loader = DeviceLoader(images, labels, BATCH, device=device, mean=mean, std=std)
    batches = [b for _, b in zip(range(steps), loader.epoch(0))]
    model.train()

    def run():
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()

    rate, _ = median_rate(run, steps * BATCH, repeats, device)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loader-batches", type=int, default=100, help="batches per timed loader repeat")
    ap.add_argument("--dataloader-batches", type=int, default=20, help="batches per timed DataLoader repeat")
    ap.add_argument("--train-steps", type=int, default=4, help="SGD steps per timed training repeat")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice); 1 avoids OpenMP spin-waiting "
                         "when other processes share the cores")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print(f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine   {cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if device.type == "cuda":
        print(f"device    {torch.cuda.get_device_name(device)}")
    print(f"software  torch {torch.__version__}, python {platform.python_version()}, device {device}")
    print(f"method    batch {BATCH}, median of {args.repeats} repeats after a warm-up; training mode, "
          "pad-4 random crop + flip")

    results = {}
    try:
        fx, fy = load_arrays("fashion-mnist", "train", download=False)
        results["DeviceLoader, Fashion-MNIST 28->32 (60k)"] = bench_device_loader(
            fx, fy, device, args.repeats, args.loader_batches, pad_to=32)
        del fx, fy
    except reslab.ReslabError as err:
        print(f"skipped   Fashion-MNIST: {err}")
    sx, sy = load_arrays("synthetic", "train", synthetic_size=50000, synthetic_shape=(3, 32, 32))
    results["DeviceLoader, CIFAR-shaped synthetic (50k)"] = bench_device_loader(
        sx, sy, device, args.repeats, args.loader_batches)
    results["DataLoader, per-sample transforms, 2 workers"] = bench_dataloader(
        sx, sy, args.repeats, args.dataloader_batches)
    results["ResNet-20 training (SGD step)"] = bench_training(sx, sy, device, args.repeats, args.train_steps)

    print()
    print(f"load average {os.getloadavg()[0]:.1f} at end (other processes share these cores: wall-clock rates "
          "are lower bounds)")
    for name, rate in results.items():
        print(f"{name:<46} {rate:>12,.0f} images/s")
    train_rate = results["ResNet-20 training (SGD step)"]
    loader_rate = results["DeviceLoader, CIFAR-shaped synthetic (50k)"]
    print()
    print(f"DeviceLoader / training      {loader_rate / train_rate:8.1f}x  (goal >= 20x)")
    print(f"DeviceLoader / DataLoader    {loader_rate / results['DataLoader, per-sample transforms, 2 workers']:8.1f}x")


if __name__ == "__main__":
    main()
