"""What the training loop records: the metrics line of each ``log_every`` window (with a
validation pass when due, and ``best.pt`` on a new best validation error) and the atomic
``latest.pt`` that a resume continues from."""

from __future__ import annotations

import time

import torch

from reslab.training import checkpoint as ckpt
from reslab.training import distributed as D
from reslab.training.evaluate import evaluate_loader
from reslab.training.runpaths import RunPaths
from reslab.training.setup import RunState


def _log_window(run: RunState, do_eval: bool) -> None:
    """The metrics line of the iterations since the last one (the global batch's under DDP),
    with a validation pass when due; a new best validation error saves ``best.pt``."""
    w = run.window
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    if run.info.enabled:  # log the whole global batch, not rank 0's shard
        D.all_mean_(w.loss_sum), D.all_mean_(w.err_sum)
    now = time.perf_counter()
    run.last = {"iteration": run.it, "epoch": round(run.epoch + run.pos / len(run.data.train_loader), 4),
                "lr": run.opt.param_groups[0]["lr"], "train_loss": w.loss_sum.item() / w.n,
                "train_error": w.err_sum.item() / w.n, "images_per_s": w.images / max(now - w.t0, 1e-9),
                "grad_norm": run.grad_norm.item(), "elapsed": run.elapsed0 + now - run.t_start}
    if run.grad_norms is not None:
        run.last["grad_norms"], run.grad_norms = run.grad_norms, None
    if do_eval:
        run.last.update(_validate(run))
        val = run.last.get("val_error")
        if val is not None and (run.best_val is None or val < run.best_val):
            run.best_val = val
            if run.info.is_main:
                ckpt.atomic_save({"model": run.bare.state_dict(), "iteration": run.it, "val_error": val,
                                  "config": run.cfg.to_dict()}, RunPaths(run.run_dir).best)
    run.log.log(run.last)
    w.reset()


def _validate(run: RunState) -> dict:
    """Validation error and loss on rank 0; test error too with ``eval_test`` (reported,
    labelled as test, never used to select a checkpoint)."""
    rec: dict = {}
    if not run.info.is_main:
        return rec
    data, args = run.data, (run.data.num_classes, run.device, run.bf16)
    if data.val_loader is not None:
        v = evaluate_loader(run.bare, data.val_loader.epoch(0), *args)
        rec.update(val_error=v["error"], val_loss=v["loss"])
    if run.cfg.eval_test:
        t = evaluate_loader(run.bare, data.test_loader.epoch(0), *args)
        rec.update(test_error=t["error"], test_loss=t["loss"])
    return rec


def _save_latest(run: RunState) -> None:
    """``latest.pt``: everything that decides the next step, and the sums behind the next
    metrics line per rank, so that a resumed run logs the same line as one never
    interrupted.  A collective under DDP: every rank calls it."""
    sums = torch.stack([run.window.loss_sum, run.window.err_sum])
    rows = D.all_gather(sums) if run.info.enabled else sums[None]
    if not run.info.is_main or run.bad_at.item() >= 0:  # never save over the last good checkpoint
        return
    rows = rows.cpu().tolist()
    window = {"loss_sum": [r[0] for r in rows], "err_sum": [r[1] for r in rows], "n": run.window.n}
    ckpt.atomic_save({
        "model": run.bare.state_dict(), "optimizer": run.opt.state_dict(), "schedule": run.sched.state_dict(),
        "iteration": run.it, "epoch": run.epoch, "position": run.pos, "best_val_error": run.best_val,
        "elapsed": run.elapsed(), "rng": ckpt.rng_state(), "config": run.cfg.to_dict(), "window": window,
    }, RunPaths(run.run_dir).latest)
