"""The he2016 recipe's schedule at its exact iterations, and config layering/round trips."""

import json

import pytest

from reslab.errors import ReslabError
from reslab.training.config import TrainConfig, from_dict, parse_sets, resolve
from reslab.training.schedule import LRSchedule


def test_he2016_step_schedule_exact_iterations():
    s = LRSchedule(resolve(recipe_name="he2016", overrides={"model": "resnet56"}))
    assert s.lr(0) == pytest.approx(0.1)
    assert s.lr(31_999) == pytest.approx(0.1)
    assert s.lr(32_000) == pytest.approx(0.01)
    assert s.lr(47_999) == pytest.approx(0.01)
    assert s.lr(48_000) == pytest.approx(0.001)
    assert s.cfg.iterations == 64_000 and s.cfg.batch_size == 128 and s.cfg.weight_decay == 1e-4


def test_he2016_110_layer_warmup_ends_on_train_error_and_returns_to_0_1():
    cfg = resolve(recipe_name="he2016", overrides={"model": "resnet110", "warmup_window": 1})
    s = LRSchedule(cfg)
    for it in range(399):
        assert s.lr(it) == pytest.approx(0.01)
        s.observe(it, 0.85)  # still above 80% training error
    assert s.lr(399) == pytest.approx(0.01)
    s.observe(399, 0.75)  # falls below 80% at iteration 399
    assert s.lr(400) == pytest.approx(0.1)  # back to 0.1, not stuck at 0.01
    assert s.warmup_ended_at == 399
    assert s.lr(31_999) == pytest.approx(0.1) and s.lr(32_000) == pytest.approx(0.01)


def test_warmup_only_for_110_and_deeper():
    assert resolve(recipe_name="he2016", overrides={"model": "resnet56"}).warmup_lr is None
    assert resolve(recipe_name="he2016", overrides={"model": "resnet1202"}).warmup_lr == 0.01


def test_warmup_state_round_trips():
    cfg = resolve(recipe_name="he2016", overrides={"model": "resnet110", "warmup_window": 3})
    a = LRSchedule(cfg)
    for it, e in enumerate([0.9, 0.7, 0.7]):
        a.observe(it, e)
    b = LRSchedule(cfg)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    a.observe(3, 0.7), b.observe(3, 0.7)
    assert a.warming is b.warming is False and a.lr(4) == b.lr(4) == pytest.approx(0.1)


def test_onecycle_rises_then_falls():
    s = LRSchedule(TrainConfig(schedule="onecycle", iterations=100, lr=0.1, milestones=()))
    lrs = [s.lr(i) for i in range(100)]
    peak = max(range(100), key=lambda i: lrs[i])
    assert 20 <= peak <= 30 and lrs[0] < 0.01 and lrs[-1] < 0.005


def test_layering_defaults_recipe_file_sets(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('model = "plain56"\nlr = 0.05\niterations = 500\n')
    cfg = resolve(recipe_name="quick", file=f, overrides=parse_sets(["lr=0.2", "milestones=10,20"]))
    assert cfg.recipe == "quick" and cfg.schedule == "onecycle"  # recipe
    assert cfg.model == "plain56" and cfg.iterations == 500     # file beats recipe
    assert cfg.lr == 0.2 and cfg.milestones == (10, 20)         # --set beats file


def test_config_round_trip_through_json():
    cfg = resolve(recipe_name="he2016", overrides={"model": "resnet110", "pad_to": "32", "train_subset": "none"})
    again = from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.pad_to == 32 and again.train_subset is None


@pytest.mark.parametrize("sets,match", [
    (["lr=-1"], "lr must be > 0"), (["lr=fast"], "not a valid float"), (["colour=red"], "unknown config key"),
    (["schedule=exp"], "valid: step"), (["batch_size=100", "accum_steps=3"], "divide"),
    (["amp=fp8"], "valid: auto"), (["warmup_window=0"], "warmup_window"), (["warmup_until_error=2"], "warmup_until_error"), (["milestones=5,2"], "increasing"), (["nesterov=maybe"], "not a valid bool"),
    (["compile=true", "compile_mode=reduce-overhead", "accum_steps=2"], "cannot accumulate gradients"),
])
def test_invalid_values_name_the_key(sets, match):
    with pytest.raises(ReslabError, match=match):
        resolve(overrides=parse_sets(sets))


def test_bad_config_file(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("lr = [")
    with pytest.raises(ReslabError, match="cannot parse"):
        resolve(file=bad)
    with pytest.raises(ReslabError, match="no such file"):
        resolve(file=tmp_path / "missing.toml")
    with pytest.raises(ReslabError, match="unknown recipe"):
        resolve(recipe_name="fast")
