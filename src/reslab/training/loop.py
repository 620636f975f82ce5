"""The training loop: He et al.'s recipe on one CPU, one GPU or many (DDP).

Read top to bottom: :func:`train` claims the run directory and decides the config;
:func:`_train` sets the process-wide settings (restored after), builds the run
(:func:`reslab.training.setup.setup`), then steps until the last iteration or a signal.
Per iteration (:func:`_step`): the schedule sets the lr, the loader yields this rank's share
of the global batch (split into ``accum_steps`` micro-batches), forward under bf16 autocast
where enabled, backward, a finiteness check, an SGD step.  Every ``log_every`` iterations a
metrics line (:func:`_log_window`), every ``eval_every`` a validation pass (:func:`_validate`),
every ``ckpt_every`` an atomic checkpoint (:func:`_save_latest`); those three live in
:mod:`reslab.training.loop_records`.  Resume
(:mod:`reslab.training.resume`) restores everything that decides the next step.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.logs import shown
from reslab.training import checkpoint as ckpt
from reslab.training import distributed as D
from reslab.training import rundir
from reslab.training.config import TrainConfig, from_dict
from reslab.training.host import StopFlag, process_settings
from reslab.training.loop_records import _log_window, _save_latest
from reslab.training.resume import latest_path
from reslab.training.resume import load as load_resume
from reslab.training.runpaths import RunPaths
from reslab.training.setup import RunState, bf16_supported, build_model, setup, use_bf16  # noqa: F401 (API)


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


def train(cfg: TrainConfig | dict | None = None, out: str | Path | None = None, *, resume: bool = False,
          overwrite: bool = False, quiet: bool = False) -> TrainResult:
    """Train ``cfg`` (a :class:`TrainConfig` or a dict of its keys) into the run directory
    ``out`` (default ``runs/MODEL-DATASET-TIME``); with ``resume``, continue the run in
    ``out`` from its latest checkpoint, using the config saved there.

    The run directory belongs to this run while it lasts (an exclusive lock, see
    :mod:`reslab.training.rundir`).  A fresh run needs a missing or empty directory; one
    that already holds a run needs ``resume`` or ``overwrite`` (which replaces that run).

    Output goes to the ``reslab`` logger (:mod:`reslab.logs`).  ``quiet=True`` prints nothing
    (records still reach handlers the application set up); ``quiet=False`` shows a progress bar
    when stderr is a terminal and, if no logging is set up, the run's lines on stderr."""
    if resume and overwrite:
        raise ReslabError("--resume continues a run, --overwrite starts it over; choose one")
    if resume:
        if out is None:
            raise ReslabError("resume needs the run directory as `out`")
    elif cfg is None:
        raise ReslabError("train() needs a config (or resume=True with a run directory)")
    else:
        cfg = from_dict(cfg) if isinstance(cfg, dict) else cfg
    run_dir = Path(out) if out is not None else \
        Path("runs") / f"{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    info = D.from_env()
    claimed, claim_error = _claim(run_dir, info, resume, overwrite)
    try:
        with shown(quiet):  # quiet=False with no logging set up: the run's lines on stderr
            return _run(cfg, run_dir, resume, info, quiet, claimed, claim_error)
    finally:
        if claimed is not None:
            claimed.release()


def _run(cfg: TrainConfig | None, run_dir: Path, resume: bool, info: D.DistInfo, quiet: bool,
         claimed: rundir.RunDir | None, claim_error: ReslabError | None) -> TrainResult:
    """Set up the device (and the process group under DDP), train, tear down."""
    state = None
    if resume:  # the run's config is the one it was started with
        state, cfg = load_resume(run_dir)
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


def _claim(run_dir: Path, info: D.DistInfo, resume: bool, overwrite: bool):
    """Rank 0 claims the run directory (only rank 0 writes).  Under DDP its refusal is
    returned, to be raised on every rank at once, so that none waits for rank 0."""
    if not info.is_main:
        return None, None
    try:
        return rundir.claim(run_dir, resume=resume, overwrite=overwrite), None
    except ReslabError as err:
        if not info.enabled:
            raise
        return None, err


def _train(cfg: TrainConfig, run_dir: Path, state: dict | None, info: D.DistInfo, device: torch.device,
           quiet: bool, claimed: rundir.RunDir | None) -> TrainResult:
    with process_settings(seed=cfg.seed, cpu=device.type == "cpu", deterministic=cfg.deterministic):
        run = setup(cfg, run_dir, state, info, device, claimed, quiet)
        try:
            _announce(run)
            run.model.train()
            run.t_start = run.window.t0 = time.perf_counter()
            batches = _batches(run)
            with StopFlag() as stop:
                while run.it < cfg.iterations and not run.interrupted:
                    x, y = next(batches)
                    _step(run, x, y, stop)
            return _finish(run)
        finally:
            run.log.close()


def _announce(run: RunState) -> None:
    cfg, info = run.cfg, run.info
    run.log.message(f"reslab train: {cfg.model} on {cfg.dataset} ({run.data.num_train} train / "
                    f"{run.data.num_val} val images), {cfg.iterations} iterations of {cfg.batch_size} images, "
                    f"{run.device}{' x' + str(info.world_size) if info.enabled else ''}, bf16 autocast "
                    f"{'on' if run.bf16 else 'off'}, channels_last {'on' if cfg.channels_last else 'off'} "
                    f"-> {run.run_dir}; logging to {run.log.outputs}")


def _batches(run: RunState):
    """This rank's batches from where the run stands, epoch after epoch."""
    while True:
        yield from run.data.train_loader.epoch(run.epoch, start=run.pos)
        run.epoch, run.pos = run.epoch + 1, 0


def _step(run: RunState, x: torch.Tensor, y: torch.Tensor, stop: StopFlag) -> None:
    """One iteration: forward/backward over the micro-batches, the finiteness check, the
    SGD step, then whatever falls due: a metrics line, a validation pass, a checkpoint."""
    cfg, it = run.cfg, run.it
    for g in run.opt.param_groups:
        g["lr"] = run.sched.lr(it)
    batch_err = _forward_backward(run, x, y)
    will_save = stop.signum is not None or (cfg.ckpt_every and (it + 1) % cfg.ckpt_every == 0)
    # No per-step host sync on the GPU: check every log_every steps (and before any save).
    check_every = 1 if run.device.type == "cpu" else max(1, cfg.log_every)
    if (it + 1) % check_every == 0 or it + 1 == cfg.iterations or will_save:
        _raise_if_diverged(run)
    if cfg.probe_every and (it + 1) % cfg.probe_every == 0 and run.info.is_main:
        run.grad_norms = _probe(run)
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.window.err_sum += batch_err.double()
    if run.sched.needs_train_error:
        if run.info.enabled:  # every rank must end the warm-up at the same iteration
            D.all_mean_(batch_err)
        run.sched.observe(it, batch_err.item())
    run.it, run.pos = it + 1, run.pos + 1
    run.window.n += 1
    run.window.images += x.shape[0] * run.info.world_size
    run.log.step()
    do_log = cfg.log_every and run.it % cfg.log_every == 0
    do_eval = (cfg.eval_every and run.it % cfg.eval_every == 0) or run.it == cfg.iterations
    if do_log or do_eval:
        _log_window(run, do_eval)
    if run.grad_norms is not None:  # a probe on an iteration without a metrics line: a line of its own
        run.log.log({"iteration": run.it, "grad_norms": run.grad_norms})
        run.grad_norms = None
    stopping = stop.signum is not None
    if run.info.enabled:  # all ranks must stop at the same iteration, or one hangs in all-reduce
        stopping = run.it % check_every == 0 and D.any_rank(stopping, run.device)
    if stopping or (cfg.ckpt_every and run.it % cfg.ckpt_every == 0) or run.it == cfg.iterations:
        _save_latest(run)
    if stopping:
        run.log.message(f"reslab train: signal {stop.signum or 'on another rank'}, checkpoint saved at iteration "
                        f"{run.it}; continue with --resume {run.run_dir}")
        run.interrupted = True


def _forward_backward(run: RunState, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradients of the batch; adds its loss to the window; returns its error (on device)."""
    micro = run.cfg.accum_steps
    batch_err = torch.zeros((), device=run.device)
    # Strided micro-batches: micro-batch k holds what rank k would hold under DDP (the loader
    # strides its shards), so accum_steps=N on one process computes exactly what N DDP ranks
    # compute, BatchNorm statistics included.
    for xm, ym in ((x[k::micro], y[k::micro]) for k in range(micro)):
        loss, err = run.step_fn(xm, ym)
        (loss / micro if micro > 1 else loss).backward()
        run.window.loss_sum += loss.detach().double() / micro
        batch_err += err / micro
    grads = [p.grad for p in run.model.parameters() if p.grad is not None]
    run.grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    finite = torch.isfinite(run.grad_norm) & torch.isfinite(run.window.loss_sum)
    run.bad_at = torch.where((~finite) & (run.bad_at < 0), torch.full_like(run.bad_at, run.it), run.bad_at)
    return batch_err


def _probe(run: RunState) -> dict[str, float]:
    """Per-module gradient norms of this iteration's update (``probe_every``), from the bare
    model (plain module names), to 4 significant digits: where vanishing or exploding
    gradients show up during training.  The same measure as ``reslab probe``."""
    from reslab.probes.grad_norms import param_grad_norms

    return {k: float(f"{v:.4g}") for k, v in param_grad_norms(run.bare).items()}


def _raise_if_diverged(run: RunState) -> None:
    if run.bad_at.item() < 0:
        return
    latest = latest_path(run.run_dir)
    raise TrainingDiverged(
        f"non-finite loss or gradient at iteration {int(run.bad_at.item())} (first non-finite gradient: "
        f"{first_nonfinite_grad(run.model)}); stopped, the last good checkpoint is "
        f"{latest if latest.exists() else 'none (no checkpoint was written yet)'}")


def first_nonfinite_grad(model: nn.Module) -> str:
    for name, p in ckpt.unwrap(model).named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return name
    return "none (the loss itself)"


def _finish(run: RunState) -> TrainResult:
    """The final weights as safetensors (unless interrupted), and the result."""
    seconds = run.elapsed()
    if run.info.is_main and not run.interrupted:
        ckpt.export_safetensors(run.bare, RunPaths(run.run_dir).weights,
                                metadata={"config": json.dumps(run.cfg.to_dict())})
    last = run.last
    return TrainResult(run_dir=run.run_dir, iterations=run.it, train_error=last.get("train_error"),
                       val_error=last.get("val_error"), best_val_error=run.best_val,
                       test_error=last.get("test_error"), images_per_s=last.get("images_per_s", 0.0),
                       seconds=seconds, interrupted=run.interrupted, model=run.bare)

