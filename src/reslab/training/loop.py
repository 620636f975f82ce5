"""The training loop: He et al.'s recipe on one CPU, one GPU or many (DDP).

Per iteration: the schedule sets the lr, the loader yields this rank's share of the global
batch (split into ``accum_steps`` micro-batches), forward under bf16 autocast where enabled,
backward, a finiteness check, an SGD step.  Every ``log_every`` iterations a metrics line,
every ``eval_every`` a validation pass, every ``ckpt_every`` an atomic checkpoint.  Resume
restores everything that decides the next step, so an interrupted run finishes with the
same weights, bit for bit, as one that never stopped (CPU, deterministic settings).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reslab.errors import ReslabError
from reslab.training import checkpoint as ckpt
from reslab.training import distributed as D
from reslab.training import rundir
from reslab.training.config import TrainConfig, from_dict
from reslab.training.data import RunData, build_data
from reslab.training.evaluate import autocast_ctx, evaluate_loader
from reslab.training.host import keep_freed_memory
from reslab.training.metrics import MetricsLogger, truncate_after
from reslab.training.schedule import LRSchedule


class TrainingDiverged(ReslabError):
    """The loss or a gradient became inf/NaN; the last good checkpoint is left intact."""


@dataclass
class TrainResult:
    run_dir: Path
    iterations: int
    train_error: float | None
    val_error: float | None
    best_val_error: float | None
    test_error: float | None
    images_per_s: float
    seconds: float
    interrupted: bool = False
    model: nn.Module | None = None  # the trained model, unwrapped (no DDP/compile prefixes)


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
    from reslab.models import create_model, model_family

    kwargs = dict(num_classes=data.num_classes, in_channels=data.in_channels)
    if model_family(cfg.model) != "mlp":
        kwargs.update(width=cfg.width, zero_init_residual=cfg.zero_init_residual, init=cfg.init)
        if "plain" not in cfg.model:
            kwargs["shortcut"] = cfg.shortcut
    return create_model(cfg.model, **kwargs)


def first_nonfinite_grad(model: nn.Module) -> str:
    for name, p in ckpt.unwrap(model).named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return name
    return "none (the loss itself)"


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next iteration and exits."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, _frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def train(cfg: TrainConfig | dict | None = None, out: str | Path | None = None, *, resume: bool = False,
          overwrite: bool = False, quiet: bool = False) -> TrainResult:
    """Train ``cfg`` (a :class:`TrainConfig` or a dict of its keys) into the run directory
    ``out`` (default ``runs/MODEL-DATASET-TIME``); with ``resume``, continue the run in
    ``out`` from its latest checkpoint, using the config saved there.

    The run directory belongs to this run while it lasts (an exclusive lock, see
    :mod:`reslab.training.rundir`).  A fresh run needs a missing or empty directory; one
    that already holds a run needs ``resume`` or ``overwrite`` (which replaces that run)."""
    if isinstance(cfg, dict):
        cfg = from_dict(cfg)
    if out is None:
        if resume or cfg is None:
            raise ReslabError("resume needs the run directory as `out`")
        out = Path("runs") / f"{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(out)
    if resume and overwrite:
        raise ReslabError("--resume continues a run, --overwrite starts it over; choose one")
    if not resume and cfg is None:
        raise ReslabError("train() needs a config (or resume=True with a run directory)")

    info = D.from_env()
    claimed: rundir.RunDir | None = None
    claim_error: ReslabError | None = None
    try:
        if info.is_main:  # only rank 0 writes, so only rank 0 holds the directory
            try:
                claimed = rundir.claim(run_dir, resume=resume, overwrite=overwrite)
            except ReslabError as err:
                if not info.enabled:
                    raise
                claim_error = err  # raised below on every rank, so that none waits for rank 0
        state = None
        if resume:
            state, cfg = load_resume_state(run_dir)
        device = D.pick_device(cfg.device, info)
        D.setup(info, device)
        try:
            if info.enabled and D.any_rank(claim_error is not None, device):
                raise claim_error or ReslabError(f"--out {run_dir}: rank 0 refused the run directory "
                                                 "(its message says why)")
            result = _train(cfg, run_dir, state, info, device, quiet, claimed)
        except BaseException:
            D.teardown(info)  # no barrier here: the other ranks may never reach it
            raise
        D.teardown(info, barrier=True)
        return result
    finally:
        if claimed is not None:
            claimed.release()


def load_resume_state(run_dir: Path) -> tuple[dict, TrainConfig]:
    """The run's latest checkpoint, checked (keys, types, ranges, RNG state) and matched
    against the run's ``config.json``: a checkpoint of another run is refused, never resumed
    as what it claims to be."""
    path = run_dir / "checkpoints" / ckpt.LATEST
    state = ckpt.load(path)
    if "config" not in state:
        raise ReslabError(f"{path}: not a resumable checkpoint: lacks config")
    cfg = from_dict(state["config"])
    ckpt.check_resume_state(state, path, cfg.iterations)
    saved = run_dir / "config.json"
    if saved.is_file():
        try:
            on_disk = json.loads(saved.read_text())
            if not isinstance(on_disk, dict):
                raise ValueError(f"a {type(on_disk).__name__}, not an object")
            on_disk = from_dict(on_disk).to_dict()
        except (ValueError, RecursionError, OSError) as err:  # ReslabError is a ValueError
            raise ReslabError(f"{saved}: not a valid run config ({' '.join(str(err).split())[:120]}); "
                              "the run directory is damaged") from None
        mine = cfg.to_dict()
        diff = [k for k in mine if mine[k] != on_disk.get(k)]
        if diff:
            k = diff[0]
            raise ReslabError(f"{path}: belongs to another run: its config differs from {saved} in "
                              f"{', '.join(diff[:5])} (e.g. {k} {mine[k]!r} vs {on_disk.get(k)!r}); not resuming")
    return state, cfg


def _train(cfg: TrainConfig, run_dir: Path, state: dict | None, info: D.DistInfo, device: torch.device,
           quiet: bool, claimed: rundir.RunDir | None) -> TrainResult:
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # deep plain nets run ~3x slower on denormal activations
        keep_freed_memory()  # fewer page faults on every step's activations (host.py)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    import random

    random.seed(cfg.seed)

    if cfg.batch_size % (info.world_size * cfg.accum_steps):
        raise ReslabError(f"batch_size {cfg.batch_size} must be divisible by world_size x accum_steps "
                          f"({info.world_size} x {cfg.accum_steps})")
    data = build_data(cfg, device, info)
    if len(data.train_loader) == 0:
        raise ReslabError(f"{data.num_train} training images make no batch of {cfg.batch_size // info.world_size} "
                          f"per rank (world size {info.world_size}); lower batch_size or raise train_subset")
    model = build_model(cfg, data).to(device)
    latest = run_dir / "checkpoints" / ckpt.LATEST
    if state is not None:
        ckpt.check_model_state(state["model"], model, latest, f"{cfg.model} (the run's config)")
        if state["position"] > len(data.train_loader):
            raise ReslabError(f"{latest}: loader position {state['position']} is beyond the "
                              f"{len(data.train_loader)} batches of an epoch; the checkpoint is damaged")
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    bf16 = use_bf16(cfg, device)
    # fused: the whole update in one multi-tensor kernel on the GPU instead of several foreach ones
    fused = device.type == "cuda" or None
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov, fused=fused)
    sched = LRSchedule(cfg)
    it, epoch, pos, best_val, elapsed0 = 0, 0, 0, None, 0.0
    if state is not None:
        ckpt.check_optimizer_state(state["optimizer"], opt, latest)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["schedule"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            raise ReslabError(f"{latest}: cannot restore the run from it ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:160]})") from None
        for g in opt.param_groups:  # the saved groups carry the saving device's kernel choice
            g["fused"], g["foreach"] = fused, None
        it, epoch, pos = state["iteration"], state["epoch"], state["position"]
        best_val, elapsed0 = state["best_val_error"], state["elapsed"]
        ckpt.set_rng_state(state["rng"])
    # Everything is built and every check passed: only now does the run write.
    if info.is_main:
        if claimed is not None:
            claimed.start()  # --overwrite: the replaced run's files go only now
        _write_config(run_dir, cfg)
        if state is not None:
            truncate_after(run_dir / "metrics.jsonl", it)
    bare = model
    if info.enabled:
        if cfg.sync_bn and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            bare = model
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # Under DDP, compile the wrapped module itself (the pattern DDPOptimizer supports); alone,
    # compile model + loss + error count as one graph (below).
    net = torch.compile(model, mode=cfg.compile_mode) if cfg.compile and info.enabled else model

    def forward_loss(xm: torch.Tensor, ym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and error of one micro-batch.  Compiled as one graph with the model, the loss,
        its backward and the error count become fused kernels (inside the CUDA graph with
        compile_mode=reduce-overhead) rather than a dozen small launches per step."""
        with autocast_ctx(device, bf16):
            logits = net(xm)
        return F.cross_entropy(logits.float(), ym), (logits.detach().argmax(1) != ym).float().mean()

    step_fn = torch.compile(forward_loss, mode=cfg.compile_mode) if cfg.compile and not info.enabled else forward_loss

    if state is None and info.is_main:
        truncate_after(run_dir / "metrics.jsonl", 0)  # a killed earlier attempt left lines behind
    log = MetricsLogger(run_dir, cfg.iterations, it, enabled=info.is_main, quiet=quiet)
    log.message(f"reslab train: {cfg.model} on {cfg.dataset} ({data.num_train} train / {data.num_val} val images), "
                f"{cfg.iterations} iterations of {cfg.batch_size} images, {device}"
                f"{' x' + str(info.world_size) if info.enabled else ''}, bf16 autocast {'on' if bf16 else 'off'}, "
                f"channels_last {'on' if cfg.channels_last else 'off'} -> {run_dir}")

    def save_latest() -> None:
        # The sums behind the next metrics line, per rank, so that a resumed run logs the
        # same line as one never interrupted.  (A collective under DDP: every rank calls save_latest.)
        sums = torch.stack([loss_sum, err_sum])
        rows = D.all_gather(sums) if info.enabled else sums[None]
        if not info.is_main or bad_at.item() >= 0:  # never save over the last good checkpoint
            return
        rows = rows.cpu().tolist()
        window = {"loss_sum": [r[0] for r in rows], "err_sum": [r[1] for r in rows], "n": window_n}
        ckpt.atomic_save({
            "model": bare.state_dict(), "optimizer": opt.state_dict(), "schedule": sched.state_dict(),
            "iteration": it, "epoch": epoch, "position": pos, "best_val_error": best_val,
            "elapsed": elapsed0 + time.perf_counter() - t_start, "rng": ckpt.rng_state(), "config": cfg.to_dict(),
            "window": window,
        }, run_dir / "checkpoints" / ckpt.LATEST)

    def validate() -> dict:
        rec: dict = {}
        if not info.is_main:
            return rec
        if data.val_loader is not None:
            v = evaluate_loader(bare, data.val_loader.epoch(0), data.num_classes, device, bf16)
            rec.update(val_error=v["error"], val_loss=v["loss"])
        if cfg.eval_test:  # reported, labelled as test, never used to select a checkpoint
            t = evaluate_loader(bare, data.test_loader.epoch(0), data.num_classes, device, bf16)
            rec.update(test_error=t["error"], test_loss=t["loss"])
        return rec

    model.train()
    micro = cfg.accum_steps
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    err_sum = torch.zeros((), device=device, dtype=torch.float64)
    bad_at = torch.full((), -1, device=device, dtype=torch.int64)  # first non-finite iteration, on device
    gn_last = torch.zeros((), device=device)
    window_n, window_imgs = 0, 0
    if state is not None and "window" in state:  # checkpoints before reslab 0.1.x have no window
        w = state["window"]
        r = info.rank if len(w["loss_sum"]) == info.world_size else None  # else: another world size
        loss_sum.fill_(w["loss_sum"][r] if r is not None else sum(w["loss_sum"]) / len(w["loss_sum"]))
        err_sum.fill_(w["err_sum"][r] if r is not None else sum(w["err_sum"]) / len(w["err_sum"]))
        window_n = w["n"]
    check_every = 1 if device.type == "cpu" else max(1, cfg.log_every)  # no per-step host sync on GPU
    last: dict = {}
    t_start = t_window = time.perf_counter()
    interrupted = False
    with _StopFlag() as stop:
        while it < cfg.iterations and not interrupted:
            for x, y in data.train_loader.epoch(epoch, start=pos):
                for g in opt.param_groups:
                    g["lr"] = sched.lr(it)
                batch_err = torch.zeros((), device=device)
                # Strided micro-batches: micro-batch k holds what rank k would hold under DDP
                # (the loader strides its shards), so accum_steps=N on one process computes
                # exactly what N DDP ranks compute, BatchNorm statistics included.
                for xm, ym in ((x[k::micro], y[k::micro]) for k in range(micro)):
                    loss, err = step_fn(xm, ym)
                    (loss / micro if micro > 1 else loss).backward()
                    loss_sum += loss.detach().double() / micro
                    batch_err += err / micro
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                gn_last = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                finite = torch.isfinite(gn_last) & torch.isfinite(loss_sum)
                bad_at = torch.where((~finite) & (bad_at < 0), torch.full_like(bad_at, it), bad_at)
                will_save = stop.signum is not None or (cfg.ckpt_every and (it + 1) % cfg.ckpt_every == 0)
                if (it + 1) % check_every == 0 or it + 1 == cfg.iterations or will_save:
                    if bad_at.item() >= 0:
                        layer = first_nonfinite_grad(model)
                        log.close()
                        raise TrainingDiverged(
                            f"non-finite loss or gradient at iteration {int(bad_at.item())} "
                            f"(first non-finite gradient: {layer}); stopped, the last good checkpoint is "
                            f"{latest_path_str(run_dir)}")
                opt.step()
                opt.zero_grad(set_to_none=True)
                err_sum += batch_err.double()
                if sched.needs_train_error:
                    if info.enabled:  # every rank must end the warm-up at the same iteration
                        D.all_mean_(batch_err)
                    sched.observe(it, batch_err.item())
                it += 1
                pos += 1
                window_n += 1
                window_imgs += x.shape[0] * info.world_size
                log.step()
                do_log = cfg.log_every and it % cfg.log_every == 0
                do_eval = (cfg.eval_every and it % cfg.eval_every == 0) or it == cfg.iterations
                if do_log or do_eval:
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    if info.enabled:  # log the whole global batch, not rank 0's shard
                        D.all_mean_(loss_sum), D.all_mean_(err_sum)
                    now = time.perf_counter()
                    last = {"iteration": it, "epoch": round(epoch + pos / len(data.train_loader), 4),
                            "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum.item() / window_n,
                            "train_error": err_sum.item() / window_n,
                            "images_per_s": window_imgs / max(now - t_window, 1e-9),
                            "grad_norm": gn_last.item(), "elapsed": elapsed0 + now - t_start}
                    if do_eval:
                        last.update(validate())
                        if "val_error" in last and (best_val is None or last["val_error"] < best_val):
                            best_val = last["val_error"]
                            if info.is_main:
                                ckpt.atomic_save({"model": bare.state_dict(), "iteration": it, "val_error": best_val,
                                                  "config": cfg.to_dict()}, run_dir / "checkpoints" / ckpt.BEST)
                    log.log(last)
                    loss_sum.zero_(), err_sum.zero_()
                    window_n, window_imgs, t_window = 0, 0, time.perf_counter()
                stopping = stop.signum is not None
                if info.enabled:  # all ranks must stop at the same iteration, or one hangs in all-reduce
                    stopping = it % check_every == 0 and D.any_rank(stopping, device)
                if stopping or (cfg.ckpt_every and it % cfg.ckpt_every == 0) or it == cfg.iterations:
                    save_latest()
                if stopping:
                    log.message(f"reslab train: signal {stop.signum or 'on another rank'}, checkpoint saved at iteration {it}; "
                                f"continue with --resume {run_dir}")
                    interrupted = True
                    break
                if it >= cfg.iterations:
                    break
            else:
                epoch, pos = epoch + 1, 0
    seconds = elapsed0 + time.perf_counter() - t_start
    if info.is_main and not interrupted:
        ckpt.export_safetensors(bare, run_dir / "model.safetensors", metadata={"config": json.dumps(cfg.to_dict())})
    log.close()
    return TrainResult(run_dir=run_dir, iterations=it, train_error=last.get("train_error"),
                       val_error=last.get("val_error"), best_val_error=best_val, test_error=last.get("test_error"),
                       images_per_s=last.get("images_per_s", 0.0), seconds=seconds, interrupted=interrupted,
                       model=bare)


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    """``config.json``, atomically (a kill leaves the old file or the new one)."""
    path = run_dir / "config.json"
    tmp = run_dir / f".config.json.tmp{os.getpid()}"
    try:
        tmp.write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def latest_path_str(run_dir: Path) -> str:
    p = run_dir / "checkpoints" / ckpt.LATEST
    return str(p) if p.exists() else "none (no checkpoint was written yet)"
