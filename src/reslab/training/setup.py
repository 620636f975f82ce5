"""Everything a training run is built from, in one object.

:func:`setup` builds the data, the model, the optimizer and the schedule, restores a resumed
run's state (:mod:`reslab.training.resume`), writes the run's config, opens the metrics log,
and returns a :class:`RunState`: what the loop in :mod:`reslab.training.loop` reads and
advances, step by step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.training import distributed as D
from reslab.training import resume
from reslab.training.config import TrainConfig
from reslab.training.data import RunData, build_data
from reslab.training.evaluate import autocast_ctx
from reslab.training.metrics import MetricsLogger, truncate_after
from reslab.training.rundir import RunDir
from reslab.training.runpaths import RunPaths
from reslab.training.schedule import LRSchedule


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 runs natively: CUDA with bf16, or a CPU with AVX512-BF16 or AMX.

    oneDNN also *emulates* bf16 on plain AVX-512, but there it is slower than fp32, so
    ``amp=auto`` keeps fp32 on such CPUs (``amp=bf16`` still forces it).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """``amp=bf16`` forces bf16 autocast (refused on a GPU without bf16); ``auto`` uses it
    only where it runs natively."""
    if cfg.amp == "bf16" and device.type == "cuda" and not bf16_supported(device):
        raise ReslabError("amp=bf16: this GPU does not support bf16; valid here: off, auto")
    return cfg.amp == "bf16" or (cfg.amp == "auto" and bf16_supported(device))


def build_model(cfg: TrainConfig, data: RunData) -> nn.Module:
    """The run's model for its data (:func:`reslab.models.build_model`)."""
    from reslab.models.registry import build_model as build

    return build(cfg, data.num_classes, data.in_channels)


@dataclass
class Window:
    """The running sums behind the next metrics line (on the device: no host sync per step)."""

    loss_sum: torch.Tensor
    err_sum: torch.Tensor
    n: int = 0
    images: int = 0
    t0: float = 0.0

    def reset(self) -> None:
        self.loss_sum.zero_(), self.err_sum.zero_()
        self.n, self.images, self.t0 = 0, 0, time.perf_counter()


@dataclass
class RunState:
    """One run: what it was built from, and where it stands (``it``, ``epoch``, ``pos``)."""

    cfg: TrainConfig
    run_dir: Path
    info: D.DistInfo
    device: torch.device
    data: RunData
    model: nn.Module      # what the step runs: the model, or its DDP wrapper
    bare: nn.Module       # the model itself (what checkpoints and evaluation use)
    opt: torch.optim.Optimizer
    sched: LRSchedule
    step_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    bf16: bool
    log: MetricsLogger
    window: Window
    bad_at: torch.Tensor  # the first non-finite iteration (-1: none yet), on the device
    grad_norm: torch.Tensor
    it: int = 0
    epoch: int = 0
    pos: int = 0          # batches of the current epoch done
    best_val: float | None = None
    elapsed0: float = 0.0  # seconds trained before this process (a resumed run)
    t_start: float = 0.0
    last: dict = field(default_factory=dict)  # the latest metrics line
    grad_norms: dict | None = None  # this iteration's per-module gradient norms (probe_every), not yet logged
    interrupted: bool = False

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t_start


def setup(cfg: TrainConfig, run_dir: Path, state: dict | None, info: D.DistInfo, device: torch.device,
          claimed: RunDir | None, quiet: bool) -> RunState:
    """Build the run (checking a resumed one against what is built), then, with every check
    passed, start writing: the config, the metrics log."""
    if cfg.batch_size % (info.world_size * cfg.accum_steps):
        raise ReslabError(f"batch_size {cfg.batch_size} must be divisible by world_size x accum_steps "
                          f"({info.world_size} x {cfg.accum_steps})")
    data = build_data(cfg, device, info)
    if len(data.train_loader) == 0:
        raise ReslabError(f"{data.num_train} training images make no batch of {cfg.batch_size // info.world_size} "
                          f"per rank (world size {info.world_size}); lower batch_size or raise train_subset")
    model = build_model(cfg, data).to(device)
    if state is not None:
        resume.check_fits(state, model, len(data.train_loader), run_dir)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bf16 = use_bf16(cfg, device)
    # fused: the whole update in one multi-tensor kernel on the GPU instead of several foreach ones
    fused = device.type == "cuda" or None
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov, fused=fused)
    sched = LRSchedule(cfg)
    position = resume.restore(state, model, opt, sched, fused, run_dir) if state is not None else None
    # Everything is built and every check passed: only now does the run write.
    if info.is_main:
        if claimed is not None:
            claimed.start()  # --overwrite: the replaced run's files go only now
        atomic_write(RunPaths(run_dir).config, json.dumps(cfg.to_dict(), indent=1) + "\n")
        # a resumed run logs again what came after its checkpoint; a fresh one drops the lines
        # a killed earlier attempt left behind
        truncate_after(RunPaths(run_dir).metrics, position.iteration if position else 0)
    bare = model
    if info.enabled:
        if cfg.sync_bn and device.type == "cuda":
            model = bare = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run = RunState(cfg=cfg, run_dir=run_dir, info=info, device=device, data=data, model=model, bare=bare, opt=opt,
                   sched=sched, step_fn=_step_fn(cfg, model, device, bf16, info.enabled), bf16=bf16,
                   log=MetricsLogger(run_dir, cfg.iterations, position.iteration if position else 0,
                                     enabled=info.is_main, quiet=quiet),
                   window=_window(state, info, device),
                   bad_at=torch.full((), -1, device=device, dtype=torch.int64),
                   grad_norm=torch.zeros((), device=device))
    if position is not None:
        run.it, run.epoch, run.pos = position.iteration, position.epoch, position.position
        run.best_val, run.elapsed0 = position.best_val_error, position.elapsed
    return run


def _step_fn(cfg: TrainConfig, model: nn.Module, device: torch.device, bf16: bool, ddp: bool):
    """Loss and error of one micro-batch.  Under DDP, compile the wrapped module itself (the
    pattern DDPOptimizer supports); alone, compile model + loss + error count as one graph:
    with its backward they become fused kernels (inside the CUDA graph with
    compile_mode=reduce-overhead) rather than a dozen small launches per step."""
    net = torch.compile(model, mode=cfg.compile_mode) if cfg.compile and ddp else model

    def forward_loss(xm: torch.Tensor, ym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast_ctx(device, bf16):
            logits = net(xm)
        return F.cross_entropy(logits.float(), ym), (logits.detach().argmax(1) != ym).float().mean()

    return torch.compile(forward_loss, mode=cfg.compile_mode) if cfg.compile and not ddp else forward_loss


def _window(state: dict | None, info: D.DistInfo, device: torch.device) -> Window:
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    err_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = resume.restore_window(state, info, loss_sum, err_sum) if state is not None else 0
    return Window(loss_sum, err_sum, n)
