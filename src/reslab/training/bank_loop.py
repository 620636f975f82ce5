"""The bank's training loop: one grouped step for all seeds, then per-seed logs, evaluations
and checkpoints in the single-run format (:mod:`reslab.training.bank` builds what it runs)."""

from __future__ import annotations

import json
import math
import time

import torch

from reslab.models.bank import Bank, bank_loss
from reslab.training import checkpoint as ckpt
from reslab.training.evaluate import evaluate_loader
from reslab.training.host import StopFlag
from reslab.training.loop import TrainingDiverged, TrainResult
from reslab.training.resume import latest_path
from reslab.training.runpaths import RunPaths


class BankLoop:
    def __init__(self, cfg, bank: Bank, opt, sched, members, it, epoch, pos, elapsed0, say):
        self.cfg, self.bank, self.opt, self.sched, self.members = cfg, bank, opt, sched, members
        self.it, self.epoch, self.pos, self.elapsed0, self.say = it, epoch, pos, elapsed0, say
        self.k = len(members)
        self.window_n = members[0].window_n
        self.images = 0
        self.interrupted = False

    def go(self) -> list[TrainResult]:
        cfg = self.cfg
        self.bank.train()
        self.t_start = self.t0 = time.perf_counter()
        batches = self._batches()
        self.loss_acc = torch.zeros(self.k, dtype=torch.float64)
        self.err_acc = torch.zeros(self.k, dtype=torch.float64)
        for i, m in enumerate(self.members):  # a resumed run's partial window
            self.loss_acc[i], self.err_acc[i] = m.loss_sum, m.err_sum
        with StopFlag() as stop:
            while self.it < cfg.iterations and not self.interrupted:
                self._step(next(batches), stop)
        return self._finish()

    def _batches(self):
        """Every seed's batch for the same iteration, stacked for the bank."""
        while True:
            streams = [m.data.train_loader.epoch(self.epoch, start=self.pos) for m in self.members]
            for pairs in zip(*streams):
                xs, ys = zip(*pairs)
                yield Bank.stack(list(xs)), torch.stack(ys, 1)
            self.epoch, self.pos = self.epoch + 1, 0

    def _step(self, batch, stop: StopFlag) -> None:
        cfg, (x, y) = self.cfg, batch
        for g in self.opt.param_groups:
            g["lr"] = self.sched.lr(self.it)
        loss, losses, errors = bank_loss(self.bank(x), y)
        loss.backward()
        if not torch.isfinite(losses).all():
            bad = [self.members[i].cfg.seed for i in range(self.k) if not math.isfinite(losses[i].item())]
            raise TrainingDiverged(f"non-finite loss at iteration {self.it} for seed(s) {bad}; stopped, the last "
                                   f"good checkpoints are in checkpoints/ of each run")
        do_log = cfg.log_every and (self.it + 1) % cfg.log_every == 0
        grad_norms = self._grad_norms() if do_log or self.it + 1 == cfg.iterations else None
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.loss_acc += losses.double()
        self.err_acc += errors.double()
        self.it, self.pos = self.it + 1, self.pos + 1
        self.window_n += 1
        self.images += x.shape[0]
        do_eval = (cfg.eval_every and self.it % cfg.eval_every == 0) or self.it == cfg.iterations
        if do_log or do_eval:
            self._log_window(do_eval, grad_norms)
        stopping = stop.signum is not None
        if stopping or (cfg.ckpt_every and self.it % cfg.ckpt_every == 0) or self.it == cfg.iterations:
            self._save_latest()
        if stopping:
            self.say(f"reslab train: signal {stop.signum}, checkpoints saved at iteration {self.it}; continue "
                     f"with --resume on the same runs")
            self.interrupted = True

    def _grad_norms(self) -> torch.Tensor:
        """Each copy's gradient norm over all its parameters."""
        sq = torch.zeros(self.k, dtype=torch.float64)
        for p in self.bank.net.parameters():
            if p.grad is None:
                continue
            # copy k's slice is the k-th block along the first axis, stacked or concatenated alike
            sq += p.grad.detach().reshape(self.k, -1).double().pow(2).sum(1)
        return sq.sqrt()

    def _log_window(self, do_eval: bool, grad_norms) -> None:
        now = time.perf_counter()
        n = max(self.window_n, 1)
        models = self.bank.unbind() if do_eval else [None] * self.k
        steps_per_epoch = len(self.members[0].data.train_loader)
        for i, (m, model) in enumerate(zip(self.members, models)):
            rec = {"iteration": self.it, "epoch": round(self.epoch + self.pos / steps_per_epoch, 4),
                   "lr": self.opt.param_groups[0]["lr"], "train_loss": self.loss_acc[i].item() / n,
                   "train_error": self.err_acc[i].item() / n,
                   # per copy: each iteration feeds every copy one batch of x.shape[0] images
                   "images_per_s": self.images / max(now - self.t0, 1e-9),
                   "elapsed": self.elapsed0 + now - self.t_start}
            if grad_norms is not None:
                rec["grad_norm"] = grad_norms[i].item()
            if do_eval:
                rec.update(self._validate(m, model))
            m.log.log(rec)
            m.last = rec
        errs = " ".join(f"{m.last['train_error']:.3f}" for m in self.members)
        self.say(f"iteration {self.it}/{self.cfg.iterations}: train error per seed {errs}, "
                 f"{self.members[0].last['images_per_s']:.0f} img/s per seed")
        self.loss_acc.zero_(), self.err_acc.zero_()
        self.window_n, self.images, self.t0 = 0, 0, time.perf_counter()

    def _validate(self, m, model) -> dict:
        rec, args = {}, (m.data.num_classes, torch.device("cpu"), False)
        if m.data.val_loader is not None:
            v = evaluate_loader(model, m.data.val_loader.epoch(0), *args)
            rec.update(val_error=v["error"], val_loss=v["loss"])
            if m.best_val is None or v["error"] < m.best_val:
                m.best_val = v["error"]
                ckpt.atomic_save({"model": model.state_dict(), "iteration": self.it, "val_error": v["error"],
                                  "config": m.cfg.to_dict()}, RunPaths(m.run_dir).best)
        if m.cfg.eval_test:
            t = evaluate_loader(model, m.data.test_loader.epoch(0), *args)
            rec.update(test_error=t["error"], test_loss=t["loss"])
        return rec

    def _save_latest(self) -> None:
        """Per seed, a latest checkpoint in the single-run format: its own weights and
        momentum buffers, the shared schedule and position."""
        models = self.bank.unbind()
        momenta = self.bank.split_state({n: self.opt.state[p]["momentum_buffer"]
                                         for n, p in self.bank.net.named_parameters() if p in self.opt.state})
        elapsed = self.elapsed0 + time.perf_counter() - self.t_start
        for i, (m, model) in enumerate(zip(self.members, models)):
            opt = torch.optim.SGD(model.parameters(), lr=self.opt.param_groups[0]["lr"], momentum=m.cfg.momentum,
                                  weight_decay=m.cfg.weight_decay, nesterov=m.cfg.nesterov)
            for n, p in model.named_parameters():
                if n in momenta[i]:
                    opt.state[p]["momentum_buffer"] = momenta[i][n].contiguous()
            window = {"loss_sum": [self.loss_acc[i].item()], "err_sum": [self.err_acc[i].item()], "n": self.window_n}
            ckpt.atomic_save({
                "model": model.state_dict(), "optimizer": opt.state_dict(), "schedule": self.sched.state_dict(),
                "iteration": self.it, "epoch": self.epoch, "position": self.pos, "best_val_error": m.best_val,
                "elapsed": elapsed, "rng": ckpt.rng_state(), "config": m.cfg.to_dict(), "window": window,
            }, latest_path(m.run_dir))

    def _finish(self) -> list[TrainResult]:
        seconds = self.elapsed0 + time.perf_counter() - self.t_start
        models = self.bank.unbind()
        out = []
        for m, model in zip(self.members, models):
            if not self.interrupted:
                ckpt.export_safetensors(model, RunPaths(m.run_dir).weights,
                                        metadata={"config": json.dumps(m.cfg.to_dict())})
            last = m.last
            out.append(TrainResult(run_dir=m.run_dir, iterations=self.it, train_error=last.get("train_error"),
                                   val_error=last.get("val_error"), best_val_error=m.best_val,
                                   test_error=last.get("test_error"), images_per_s=last.get("images_per_s", 0.0),
                                   seconds=seconds, interrupted=self.interrupted, model=model))
        return out
