"""Training K seeds of one config at once, as one bank (:mod:`reslab.models.bank`).

Each seed is an ordinary run with its own run directory (config.json, metrics.jsonl,
checkpoints, model.safetensors), its own data (split, order, augmentation) and its own
initialisation, exactly as ``train(replace(cfg, seed=k))`` would build them.  Only the
computation is shared: one grouped forward/backward and one SGD step for all K copies per
iteration.  Checkpoints are written per seed in the single-run format, so each run can be
evaluated, probed, resumed alone or resumed as part of its bank.

When a bank does not pay (a GPU, bf16 autocast, DDP, a warm-up schedule that watches the
training error, a model that is not a CIFAR ResNet or plain net) :func:`bank_fallback` says
why in one line and :func:`train_seeds` trains the seeds one after another instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reslab.errors import ReslabError
from reslab.fileio import atomic_write
from reslab.models.bank import Bank
from reslab.training import checkpoint as ckpt
from reslab.training import rundir
from reslab.training.config import TrainConfig
from reslab.training.data import RunData, build_data
from reslab.training.distributed import DistInfo
from reslab.training.bank_loop import BankLoop
from reslab.training.host import process_settings
from reslab.training.loop import TrainResult
from reslab.training.metrics import MetricsLogger, truncate_after
from reslab.training.resume import latest_path
from reslab.training.runpaths import RunPaths
from reslab.training.resume import load as load_resume
from reslab.training.schedule import LRSchedule
from reslab.training.setup import build_model

INDEX_FILE = "bank.json"
# Grouped convolutions pay where per-operator overhead dominates: at width 0.25 (4/8/16 channels per
# copy) a bank of 2-8 ResNet-56s ran 1.5x faster than separate runs on one thread, at width 0.5 and 1
# it ran 0.8-0.95x (benchmarks/RESULTS.md, "Banks").
BANK_MAX_WIDTH = 0.25


@dataclass
class Member:
    """One seed of the bank: its config, data, run directory, log and running sums."""

    cfg: TrainConfig
    run_dir: Path
    data: RunData
    log: MetricsLogger | None = None
    loss_sum: float = 0.0
    err_sum: float = 0.0
    window_n: int = 0                   # iterations in the metrics line being accumulated
    best_val: float | None = None
    last: dict = field(default_factory=dict)


def bank_fallback(cfg: TrainConfig, device: torch.device | None = None) -> str | None:
    """Why a bank would not pay or not apply for ``cfg`` (None: it does)."""
    from reslab.models.registry import spec

    device = device or torch.device("cpu")
    if device.type != "cpu":
        return "on a GPU one net already fills the device: separate runs"
    from reslab.training.setup import use_bf16

    if use_bf16(cfg, device):
        return "bf16 autocast (amp=bf16, or amp=auto on a CPU with native bf16): banks run fp32; separate runs"
    if cfg.warmup_lr is not None:
        return "the warm-up watches each run's own training error; separate runs"
    if cfg.accum_steps != 1 or cfg.compile or cfg.probe_every:
        return "accum_steps, compile and probe_every are single-run features; separate runs"
    if cfg.width > BANK_MAX_WIDTH:
        return (f"width {cfg.width:g}: above width {BANK_MAX_WIDTH:g} a bank measured slower than separate runs "
                "(benchmarks/RESULTS.md); separate runs")
    if spec(cfg.model).family != "cifar":
        return f"{cfg.model} is not a CIFAR ResNet or plain net (the bankable family); separate runs"
    return None


def train_seeds(cfg: TrainConfig, seeds: list[int], outs: list[Path], *, bank: bool = True,
                resume: bool = False, overwrite: bool = False, quiet: bool = True,
                say=print) -> list[TrainResult]:
    """Train ``cfg`` once per seed into ``outs``: as one bank where it pays, else one by one."""
    from reslab.training.loop import train

    why = bank_fallback(cfg) if bank else "banks turned off"
    if why is None:
        return train_bank(cfg, seeds, outs, resume=resume, overwrite=overwrite, say=say)
    say(f"reslab train: {len(seeds)} seeds one after another ({why})")
    results = [train(None if resume else dataclasses.replace(cfg, seed=s), o, resume=resume, overwrite=overwrite,
                     quiet=quiet) for s, o in zip(seeds, outs)]
    _write_index([Path(o) for o in outs], seeds, cfg, banked=False, why=why)
    return results


def train_bank(cfg: TrainConfig, seeds: list[int], outs: list[Path], *, resume: bool = False,
               overwrite: bool = False, say=print) -> list[TrainResult]:
    """Train seeds ``seeds`` of ``cfg`` as one bank into run directories ``outs``."""
    outs = [Path(o) for o in outs]
    if len(set(seeds)) != len(seeds) or len(seeds) != len(outs) or not seeds:
        raise ReslabError(f"seeds must be distinct and one per run directory; got seeds {seeds}, {len(outs)} dirs")
    claims = []
    try:
        for o in outs:
            claims.append(rundir.claim(o, resume=resume, overwrite=overwrite))
        states = [load_resume(o) for o in outs] if resume else None
        if states is not None:
            cfg = states[0][1]
            seeds = [c.seed for _, c in states]
        with process_settings(seed=seeds[0], cpu=True, deterministic=cfg.deterministic):
            return _train(cfg, seeds, outs, states, claims, say)
    finally:
        for c in claims:
            c.release()


def _build(cfg: TrainConfig, seeds: list[int], outs: list[Path]) -> tuple[list[Member], list[torch.nn.Module]]:
    """Each seed's data and model, built in the order and from the RNG state a single run
    would build them in (``process_settings`` seeds the global RNGs, then data, then model)."""
    members, models = [], []
    for seed, out in zip(seeds, outs):
        c = dataclasses.replace(cfg, seed=seed)
        torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
        data = build_data(c, torch.device("cpu"), DistInfo())
        models.append(build_model(c, data))
        members.append(Member(c, out, data))
    return members, models


def _train(cfg, seeds, outs, states, claims, say) -> list[TrainResult]:
    members, models = _build(cfg, seeds, outs)
    lengths = {len(m.data.train_loader) for m in members}
    if len(lengths) != 1 or 0 in lengths:
        raise ReslabError(f"the seeds' training splits give {sorted(lengths)} batches per epoch; a bank needs "
                          "the same non-zero number for every seed")
    it = epoch = pos = 0
    elapsed0 = 0.0
    if states is not None:
        it, epoch, pos, elapsed0 = _restore(members, models, states)
    bank = Bank.bind(models)
    if cfg.channels_last:
        bank = bank.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(bank.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov)
    sched = LRSchedule(cfg)
    if states is not None:
        _restore_momentum(bank, opt, [s for s, _ in states])
        sched.load_state_dict(states[0][0]["schedule"])
    for c, m in zip(claims, members):  # every check passed: only now do the runs write
        c.start()
        atomic_write(RunPaths(m.run_dir).config, json.dumps(m.cfg.to_dict(), indent=1) + "\n")
        truncate_after(RunPaths(m.run_dir).metrics, it)
        m.log = MetricsLogger(m.run_dir, cfg.iterations, it, enabled=True, quiet=True, terminal=False)
    _write_index(outs, seeds, cfg)
    say(f"reslab train: bank of {len(seeds)} x {cfg.model} (seeds {seeds}) on {cfg.dataset}, {cfg.iterations} "
        f"iterations of {cfg.batch_size} images each, {torch.get_num_threads()} thread(s), fp32 -> "
        f"{', '.join(str(o) for o in outs)}")
    run = BankLoop(cfg, bank, opt, sched, members, it, epoch, pos, elapsed0, say)
    try:
        return run.go()
    finally:
        for m in members:
            if m.log is not None:
                m.log.close()


def _restore(members, models, states) -> tuple[int, int, int, float]:
    positions = {(s["iteration"], s["epoch"], s["position"]) for s, _ in states}
    if len(positions) != 1:
        raise ReslabError(f"the bank's runs stopped at different points {sorted(positions)}; resume them one by one")
    for m, model, (s, _) in zip(members, models, states):
        ckpt.check_model_state(s["model"], model, latest_path(m.run_dir), m.cfg.model)
        model.load_state_dict(s["model"])
        m.best_val = s["best_val_error"]
        w = s.get("window")
        if w:
            m.loss_sum, m.err_sum = sum(w["loss_sum"]) / len(w["loss_sum"]), sum(w["err_sum"]) / len(w["err_sum"])
            m.window_n = w["n"]
    s0 = states[0][0]
    return s0["iteration"], s0["epoch"], s0["position"], s0["elapsed"]


def _restore_momentum(bank: Bank, opt: torch.optim.Optimizer, states: list[dict]) -> None:
    """Each run's momentum buffers (single-run optimizer state) into the bank's optimizer."""
    names = [n for n, _ in bank.net.named_parameters()]
    per_run = []
    for s in states:
        buf = s["optimizer"]["state"]
        if len(buf) != len(names):
            raise ReslabError(f"a checkpoint's optimizer holds {len(buf)} buffers, the model {len(names)} parameters")
        per_run.append({n: buf[i]["momentum_buffer"] for i, n in enumerate(names)})
    joined = bank.join_state(per_run)
    for n, p in bank.net.named_parameters():
        opt.state[p]["momentum_buffer"] = joined[n].to(memory_format=torch.preserve_format).clone()


def _write_index(outs: list[Path], seeds: list[int], cfg: TrainConfig, banked: bool = True,
                 why: str | None = None) -> None:
    """``bank.json`` beside the runs (in their common parent): which runs trained together,
    and whether as one bank (``banked``) or one after another (``why`` not)."""
    parent = _common_parent(outs)
    index = {"model": cfg.model, "seeds": seeds, "runs": [str(o.absolute().relative_to(parent)) for o in outs],
             "banked": banked, **({"why_not": why} if why else {})}
    atomic_write(parent / INDEX_FILE, json.dumps(index, indent=1) + "\n")


def _common_parent(outs: list[Path]) -> Path:
    return Path(os.path.commonpath([str(o.absolute().parent) for o in outs]))
