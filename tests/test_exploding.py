"""The exploding-gradient experiment: directions of the effect, non-finite values caught,
results shape, figures, CLI.  Tiny configs only; no numbers from earlier runs are pinned."""

from __future__ import annotations

import json
import math

import pytest

from reslab.cli import main
from reslab.errors import ReslabError
from reslab.experiments import base, exploding

TINY = dict(depths=(10,), width=64, n_images=256, batch=64, steps=8)


@pytest.fixture(scope="module")
def results():
    cfg = exploding.config_for("quick", seeds=1, conditions=("raw", "normalised+bn"), **TINY)
    return exploding.run(cfg)


def test_raw_pixels_without_bn_blow_up_normalised_bn_does_not(results):
    raw = results["data"]["runs"]["raw"]["10"][0]
    bn = results["data"]["runs"]["normalised+bn"]["10"][0]
    assert bn["nonfinite"] is None
    assert all(math.isfinite(g) for g in bn["grad_norm"])
    assert raw["nonfinite"] is not None or exploding.max_finite(raw) > 100 * exploding.max_finite(bn)
    # already at step 0, before any update, the raw-pixel gradient is the larger one
    assert raw["grad_norm"][0] > bn["grad_norm"][0]


def test_nonfinite_is_caught_and_located():
    cfg = exploding.config_for("quick", seeds=1, conditions=("raw",), init_gain=3.0, lr=1.0,
                               **{**TINY, "steps": 20})
    x, y = exploding.load_flat(cfg.dataset, cfg.n_images)
    rec = exploding.train(cfg, "raw", 10, 0, x, y)  # must not raise
    nf = rec["nonfinite"]
    assert nf is not None and nf["step"] < cfg.steps
    assert nf["phase"] in ("forward", "loss", "backward")
    assert nf["layer"] is None or 1 <= nf["layer"] <= rec["n_layers"] == 11
    assert len(rec["grad_norm"]) == len(rec["loss"]) == nf["step"] + 1
    assert rec["layers"]["step"][-1] == nf["step"]


def test_results_shape_and_verdict_fields(results):
    assert results["experiment"] == "exploding"
    assert set(results) >= {"claim", "config", "conditions", "seconds", "verdict", "data"}
    numbers = results["verdict"]["numbers"]
    assert set(numbers) == {"raw", "normalised+bn"}
    assert set(numbers["raw"]["10"]) >= {"nonfinite_step", "grad_norm_step0", "growth_max_over_step0"}
    rec = results["data"]["runs"]["normalised+bn"]["10"][0]
    assert len(rec["grad_norm"]) == TINY["steps"]
    assert rec["layers"]["step"] == [0, 1, 2, 3, 4, TINY["steps"] - 1]
    assert all(len(g) == 11 for g in rec["layers"]["grad"])
    json.dumps(base._jsonable(results))


def test_plot_writes_pngs_from_saved_results(results, tmp_path):
    base.save_results(results, tmp_path)
    saved = base.load_results(tmp_path)  # inf/NaN went through JSON as "inf"/null
    paths = exploding.plot(saved, tmp_path)
    assert len(paths) == 2
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad", [dict(seeds=0), dict(steps=0), dict(conditions=("raw", "clipped")),
                                 dict(init_gain=0.0), dict(stable_factor=1000.0), dict(lr=-1.0)])
def test_config_rejects_bad_settings(bad):
    with pytest.raises(ReslabError):
        exploding.config_for("quick", **bad)


def test_command_writes_results_and_returns_0(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(exploding.SCALES, "quick", dict(seeds=1, **TINY))
    assert main(["exploding", "--out", str(tmp_path), "--quiet"]) == 0
    saved = json.loads((tmp_path / "exploding" / "results.json").read_text())
    assert saved["config"]["steps"] == TINY["steps"]
    assert len(list((tmp_path / "exploding").glob("*.png"))) == 2
    assert "[exploding]" in capsys.readouterr().out


def test_command_bad_seeds_is_a_clean_error(tmp_path, capsys):
    assert main(["exploding", "--out", str(tmp_path), "--seeds", "0"]) == 2
    assert "Traceback" not in capsys.readouterr().err
