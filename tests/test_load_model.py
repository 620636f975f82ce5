"""load_model / create_model(checkpoint_path=) / reslab eval on what the trainer writes:
a run directory, its checkpoints, its model.safetensors (config in the metadata, or
config.json beside a copy without it), and converted imported weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import reslab
from reslab.cli import main
from reslab.errors import ReslabError
from reslab.training import TrainConfig
from reslab.weights import ModelCard, save_converted
from reslab.weights.load import LoadedModel

TINY = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 128, "val_size": 64,
        "batch_size": 32, "log_every": 2, "eval_every": 2, "ckpt_every": 2, "schedule": "constant", "lr": 0.05,
        "iterations": 4, "amp": "off", "test_subset": 200}
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
# The trainer's model runs channels_last; a loaded one is contiguous: same weights, other kernels.


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("RESLAB_WEIGHTS_MIRROR", raising=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("load") / "run"
    result = reslab.train(TINY, out, quiet=True)
    with torch.no_grad():
        want = result.model.eval()(X)
    return out, want


def test_run_dir_checkpoint_and_safetensors_load_the_same_model(run):
    out, want = run
    for source in (out / "model.safetensors", out / "checkpoints" / "latest.pt"):
        loaded = reslab.load_model(source)
        model, config = loaded
        assert isinstance(loaded, LoadedModel) and isinstance(config, TrainConfig)
        assert not model.training and config.model == "cifar-resnet8" and config.width == 0.25
        assert loaded.arch == {"model": "cifar-resnet8", "num_classes": 10, "in_channels": 3, "width": 0.25,
                               "shortcut": "A"}
        with torch.no_grad():
            assert (model(X) - want).abs().max() < 1e-5, source
    assert reslab.load_model(out / "checkpoints" / "latest.pt").iteration == 4
    by_dir = reslab.load_model(out)  # best.pt, else latest.pt
    assert by_dir.path.name in ("best.pt", "latest.pt") and by_dir.card.source == "reslab"
    assert "training split" in by_dir.card.preprocessing
    with pytest.raises(ReslabError, match="do not carry their normalisation"):
        by_dir.preprocess(torch.zeros(3, 32, 32, dtype=torch.uint8))
    assert by_dir.preprocess(torch.full((3, 32, 32), 255, dtype=torch.uint8), mean=(0.5,) * 3,
                             std=(0.5,) * 3).eq(1).all()


def test_trainer_safetensors_metadata_holds_the_config(run):
    from safetensors import safe_open

    out, _ = run
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"])["model"] == "cifar-resnet8"


def test_safetensors_without_metadata_reads_config_json_beside_it(run, tmp_path):
    out, want = run
    state = load_file(str(out / "model.safetensors"))
    bare = tmp_path / "copy" / "weights.safetensors"
    bare.parent.mkdir()
    save_file(state, str(bare))  # no metadata
    with pytest.raises(ReslabError, match="no reslab metadata and no config.json"):
        reslab.load_model(bare)
    shutil.copy(out / "config.json", bare.parent / "config.json")
    with torch.no_grad():
        assert (reslab.load_model(bare).model(X) - want).abs().max() < 1e-5


def test_create_model_checkpoint_path(run):
    out, want = run
    for path in (out / "model.safetensors", out / "checkpoints" / "latest.pt"):
        net = reslab.create_model("cifar-resnet8", width=0.25, checkpoint_path=str(path)).eval()
        with torch.no_grad():
            assert (net(X) - want).abs().max() < 1e-5
    with pytest.raises(ReslabError, match="do not fit"):
        reslab.create_model("cifar-resnet8", width=0.5, checkpoint_path=str(out / "model.safetensors"))


def test_eval_accepts_safetensors_and_checkpoints(run, capsys):
    out, _ = run
    assert main(["eval", str(out / "model.safetensors"), "--split", "test"]) == 0
    a = json.loads((out / "eval_test.json").read_text())
    assert main(["eval", str(out / "checkpoints" / "latest.pt"), "--split", "test"]) == 0
    b = json.loads((out / "eval_test.json").read_text())
    assert a["n"] == 200 and a["error"] == pytest.approx(b["error"]) and a["model"] == "cifar-resnet8"
    assert "iteration 4" in capsys.readouterr().out


def test_eval_of_imported_weights_uses_the_card_and_the_test_split(tmp_path, capsys):
    net = reslab.create_model("cifar-resnet8", shortcut="B").eval()
    card = ModelCard(source="test-source", origin="generated", license="MIT", dataset="synthetic",
                     preprocessing="x/255 then mean/std", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                     reported="none")
    arch = {"model": "cifar-resnet8", "num_classes": 10, "in_channels": 3, "shortcut": "B"}
    path = save_converted(LoadedModel(net, None, card, arch), tmp_path / "w" / "net.safetensors")
    loaded = reslab.load_model(path)
    assert loaded.card == card and loaded.config is None
    with torch.no_grad():
        assert torch.equal(loaded.model(X), net(X))
    assert main(["eval", str(path), "--out", str(tmp_path / "ev")]) == 0
    res = json.loads((tmp_path / "ev" / "eval_test.json").read_text())
    assert res["split"] == "test" and res["source"] == "test-source" and res["n"] == 2000
    assert "weights: test-source" in capsys.readouterr().out
    assert main(["eval", str(path), "--split", "val"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--split test" in err


def test_bad_sources_are_one_line_errors(tmp_path, capsys):
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"not a checkpoint at all")
    junk_st = tmp_path / "junk.safetensors"
    junk_st.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    aka = tmp_path / "aka.th"
    torch.save({"state_dict": {"module.layer1.0.conv1.weight": torch.zeros(1)}, "best_prec1": 90.0}, aka)
    cases = [(tmp_path / "missing", "no such run directory"), (tmp_path, "is it a reslab run directory"),
             (junk_pt, "not a readable"), (junk_st, "not a readable safetensors"),
             (plain, "not a reslab checkpoint"), (aka, "looks like an akamaster checkpoint"),
             ("nobody:resnet20", "unknown weight source")]
    for source, msg in cases:
        with pytest.raises(ReslabError, match=msg):
            reslab.load_model(source)
        assert main(["eval", str(source)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, (source, err)
