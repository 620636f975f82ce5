"""Banks: K seeds as one grouped net compute what K separate runs compute."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from reslab.errors import ReslabError
from reslab.models import create_model
from reslab.models.bank import Bank, bank_loss
from reslab.training import train
from reslab.training.bank import bank_fallback, train_bank
from reslab.training.config import from_dict

TINY = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 256, "val_size": 64,
        "batch_size": 32, "log_every": 5, "eval_every": 10, "ckpt_every": 10, "schedule": "constant",
        "iterations": 20, "amp": "off", "lr": 0.02}


def _models(name, seeds, **kw):
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append(create_model(name, num_classes=10, in_channels=1, width=0.25, **kw))
    return out


@pytest.mark.parametrize("name,kw", [("cifar-resnet8", {}), ("cifar-plain8", {}), ("cifar-resnet14", {"shortcut": "B"}),
                                     ("cifar-plain8", {"init": "looks-linear"})])
def test_bank_forward_and_gradients_equal_the_copies(one_thread, name, kw):
    models = _models(name, [0, 1, 2], **kw)
    bank = Bank.bind(models)
    xs = [torch.randn(6, 1, 28, 28) for _ in models]
    ys = [torch.randint(0, 10, (6,)) for _ in models]
    loss, losses, _ = bank_loss(bank(Bank.stack(xs)), torch.stack(ys, 1))
    loss.backward()
    grads = bank.split_state({n: p.grad for n, p in bank.net.named_parameters()})
    for k, m in enumerate(models):
        single = torch.nn.functional.cross_entropy(m(xs[k]), ys[k])
        single.backward()
        assert losses[k].item() == pytest.approx(single.item(), rel=1e-5)
        for n, p in m.named_parameters():
            assert torch.allclose(p.grad, grads[k][n], rtol=1e-4, atol=1e-5), n


def test_unbind_gives_back_the_models_exactly(one_thread):
    models = _models("cifar-resnet8", [3, 4])
    back = Bank.bind(models).unbind()
    for a, b in zip(models, back):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bank_refuses_mixed_architectures_and_unbankable_modules():
    with pytest.raises(ReslabError, match="one architecture"):
        Bank.bind(_models("cifar-resnet8", [0]) + _models("cifar-resnet14", [1]))
    with pytest.raises(ReslabError, match="cannot group"):
        Bank.bind([create_model("mlp", depth=3, width=8)])


def _rel(a, b):
    """||a - b|| relative to ||a||, or to 1 for tensors near zero (BN biases start at 0,
    and their few-1e-7 float differences would read as large relative errors)."""
    return ((a.float() - b.float()).norm() / max(a.float().norm().item(), 1.0)).item()


FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _worst(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(_rel(sa[n], sb[n]) for n in sa if sa[n].is_floating_point())


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Fashion-MNIST (scripts/setup.sh installs it as root)")
def test_bank_sgd_steps_equal_separate_runs(tmp_path, one_thread):
    """Copy k of a bank and ``train(seed=k)`` are the same computation.  After one SGD step
    they agree within 1e-4 per tensor.  After 20 steps the float summation order's
    differences have grown: the bound is then what a single run differs from itself by
    when only its thread count (so its summation order) changes, measured here."""
    cfg = from_dict({**TINY, "dataset": "fashion-mnist"})
    seeds = [0, 1, 2]
    one = train_bank(dataclasses.replace(cfg, iterations=1, eval_every=0, ckpt_every=0), seeds,
                     [tmp_path / f"one-s{s}" for s in seeds], say=lambda _m: None)
    bank = train_bank(cfg, seeds, [tmp_path / f"bank-s{s}" for s in seeds], say=lambda _m: None)
    for s, b1, b in zip(seeds, one, bank):
        single1 = train(dataclasses.replace(cfg, seed=s, iterations=1, eval_every=0, ckpt_every=0),
                        tmp_path / f"single1-s{s}", quiet=True)
        assert _worst(single1.model, b1.model) < 1e-4
        single = train(dataclasses.replace(cfg, seed=s), tmp_path / f"single-s{s}", quiet=True)
        torch.set_num_threads(2)
        try:
            other_order = train(dataclasses.replace(cfg, seed=s), tmp_path / f"two-threads-s{s}", quiet=True)
        finally:
            torch.set_num_threads(1)
        floor = _worst(single.model, other_order.model)
        assert _worst(single.model, b.model) <= max(1e-4, floor), (s, _worst(single.model, b.model), floor)
        assert abs(b.train_error - single.train_error) <= 0.05
    # each seed is an ordinary run directory, plus the bank's index
    for s in seeds:
        run = tmp_path / f"bank-s{s}"
        assert json.loads((run / "config.json").read_text())["seed"] == s
        assert (run / "model.safetensors").is_file() and (run / "checkpoints" / "latest.pt").is_file()
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    index = json.loads((tmp_path / "bank.json").read_text())
    assert index["runs"][-3:] == [f"bank-s{s}" for s in seeds]


def test_unbound_runs_are_ordinary_runs_for_load_eval_probe_and_resume(tmp_path, one_thread):
    import reslab

    cfg = from_dict({**TINY, "iterations": 10})
    res = train_bank(cfg, [5, 6], [tmp_path / "a", tmp_path / "b"], say=lambda _m: None)
    loaded = reslab.load_model(tmp_path / "a")
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(loaded.model.eval()(x), res[0].model.eval()(x), atol=1e-5)
    assert 0 <= reslab.evaluate(tmp_path / "b")["error"] <= 1
    report = reslab.probe(loaded.model, x)
    assert report is not None
    # a bank's checkpoint is a single run's: resuming the finished run passes every check
    again = train(None, tmp_path / "a", resume=True, quiet=True)
    assert again.iterations == 10 and not again.interrupted


def test_bank_resume_is_bit_identical(tmp_path, one_thread):
    """Stop a bank at iteration 10 (its checkpoints), resume it: the final weights equal
    an uninterrupted bank's bit for bit."""
    cfg = from_dict(TINY)
    full = train_bank(cfg, [0, 1], [tmp_path / "f0", tmp_path / "f1"], say=lambda _m: None)
    half = from_dict({**TINY})
    outs = [tmp_path / "h0", tmp_path / "h1"]
    _interrupt_at(half, outs, 10)
    resumed = train_bank(cfg, [0, 1], outs, resume=True, say=lambda _m: None)
    for a, b in zip(full, resumed):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert _untimed(a.run_dir) == _untimed(b.run_dir)  # the same metrics lines, line for line


def _untimed(run_dir):
    timing = ("images_per_s", "elapsed")
    return [{k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _interrupt_at(cfg, outs, iteration):
    """Run a bank that receives SIGINT after ``iteration`` steps (as Ctrl-C would)."""
    import os
    import signal

    from reslab.training import bank_loop

    original = bank_loop.BankLoop._step

    def step(self, batch, stop):
        if self.it == iteration - 1:
            os.kill(os.getpid(), signal.SIGINT)
        original(self, batch, stop)

    bank_loop.BankLoop._step = step
    try:
        res = train_bank(cfg, [0, 1], outs, say=lambda _m: None)
    finally:
        bank_loop.BankLoop._step = original
    assert all(r.interrupted and r.iterations == iteration for r in res)


def test_bank_fallback_says_why():
    assert bank_fallback(from_dict(TINY)) is None
    assert "GPU" in bank_fallback(from_dict(TINY), torch.device("cuda"))
    assert "bf16" in bank_fallback(from_dict({**TINY, "amp": "bf16"}))
    assert "not a CIFAR" in bank_fallback(from_dict({**TINY, "model": "resnet18"}))
    assert "slower" in bank_fallback(from_dict({**TINY, "width": 0.5}))


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Fashion-MNIST (scripts/setup.sh installs it as root)")
def test_a_full_run_as_a_bank_ends_where_separate_runs_end(tmp_path, one_thread):
    """A whole (tiny) run: the bank's final errors and the separate runs' agree within the
    spread over seeds, and the runs learn (so the comparison means something)."""
    from statistics import mean, stdev

    cfg = from_dict({**TINY, "dataset": "fashion-mnist", "iterations": 80, "schedule": "onecycle", "lr": 0.1,
                     "train_subset": 512, "eval_every": 80, "ckpt_every": 0, "log_every": 20})
    seeds = [0, 1, 2]
    bank = [r.train_error for r in train_bank(cfg, seeds, [tmp_path / f"b{s}" for s in seeds], say=lambda _m: None)]
    alone = [train(dataclasses.replace(cfg, seed=s), tmp_path / f"s{s}", quiet=True).train_error for s in seeds]
    assert max(alone) < 0.6  # learned: chance is 0.9
    assert abs(mean(bank) - mean(alone)) <= max(stdev(alone), 0.01)
