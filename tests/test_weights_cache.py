"""One weights cache in safetensors, the mirror as a plain folder, file modes that follow
the umask, and timm's list_models / num_classes conventions."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat

import pytest
import torch

import reslab
from reslab.cli import main
from reslab.errors import ReslabError
from reslab.weights.convert import source_key
from reslab.weights.download import converted_path, sha256_file, weights_cache_dir
from reslab.weights.load import import_weights
from reslab.weights.sources import SOURCES, PinnedFile

X = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("RESLAB_WEIGHTS_MIRROR", raising=False)


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A chenyaofo-format resnet20 (option B) pinned at a local file; returns (reference net, file)."""
    torch.manual_seed(4)
    ref = reslab.create_model("resnet20", shortcut="B").eval()
    for m in ref.modules():  # non-trivial BN statistics, so that a wrong mapping shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
    f = tmp_path / "served" / "cifar10_resnet20-x.pt"
    f.parent.mkdir()
    torch.save({source_key("chenyaofo", k): v for k, v in ref.state_dict().items()}, f)
    pin(monkeypatch, f.as_uri(), sha256_file(f))
    return ref, f


def pin(monkeypatch, url, sha):
    pf = PinnedFile("resnet20", url, sha, "test", None)
    monkeypatch.setitem(SOURCES, "chenyaofo-cifar10", dataclasses.replace(SOURCES["chenyaofo-cifar10"],
                                                                          files={"resnet20": pf}))


def same(a, b) -> bool:
    with torch.no_grad():
        return bool((a.eval()(X) - b.eval()(X)).abs().max() < 1e-5)


def test_the_converted_file_is_the_cache(published, monkeypatch, capsys):
    ref, origin = published
    out = import_weights("chenyaofo-cifar10", "resnet20")
    assert out == converted_path("chenyaofo-cifar10", "resnet20")
    assert sorted(p.name for p in out.parent.iterdir()) == ["resnet20.safetensors"]  # one file per model
    pin(monkeypatch, (origin.parent / "gone.pt").as_uri(), "0" * 64)  # a download would now fail
    assert same(reslab.create_model("resnet20", pretrained="chenyaofo-cifar10"), ref)
    assert same(reslab.load_model("chenyaofo-cifar10:resnet20").model, ref)
    assert main(["weights", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("chenyaofo-cifar10") and " resnet20 " in line)
    assert row.split()[-1] == "yes"


def test_pretrained_fills_the_same_cache(published):
    ref, _ = published
    assert same(reslab.create_model("resnet20", pretrained="chenyaofo-cifar10"), ref)
    folder = weights_cache_dir() / "chenyaofo-cifar10"
    assert sorted(p.name for p in folder.iterdir()) == ["resnet20.safetensors"]


def test_mirror_may_be_a_plain_folder(published, monkeypatch):
    ref, origin = published
    pin(monkeypatch, "https://example.invalid/cifar10_resnet20-x.pt", sha256_file(origin))
    monkeypatch.setenv("RESLAB_WEIGHTS_MIRROR", str(origin.parent))  # no file:// in front
    assert same(reslab.create_model("resnet20", pretrained="chenyaofo-cifar10"), ref)


def test_written_files_follow_the_umask(published, tmp_path):
    from reslab.training.checkpoint import export_safetensors

    old = os.umask(0o022)
    try:
        out = import_weights("chenyaofo-cifar10", "resnet20")
        run_file = export_safetensors(reslab.create_model("cifar-resnet8", width=0.25), tmp_path / "model.safetensors")
    finally:
        os.umask(old)
    for path in (out, run_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_list_models_filters_like_timm():
    assert reslab.list_models("resnet*", pretrained=True) == ["resnet20", "resnet32", "resnet44", "resnet56",
                                                              "resnet110", "resnet1202"]
    assert reslab.list_models("*56") == ["resnet56", "plain56"]
    assert "mlp" in reslab.list_models() and "plain20" not in reslab.list_models(pretrained=True)
    assert "cifar-resnetN" in reslab.list_models.__doc__


def test_pretrained_with_other_num_classes_gets_a_new_head(published, caplog):
    ref, _ = published
    with caplog.at_level(logging.WARNING, logger="reslab"):
        net = reslab.create_model("resnet20", pretrained="chenyaofo-cifar10", num_classes=7)
    assert net.head.fc.out_features == 7
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "num_classes=7" in warnings[0].getMessage()
    body = {k: v for k, v in ref.state_dict().items() if not k.startswith("head.fc.")}
    got = net.state_dict()
    assert all(torch.equal(got[k], v) for k, v in body.items())  # everything but the head is pretrained
    with pytest.raises(ReslabError, match="in_channels=3"):
        reslab.create_model("resnet20", pretrained="chenyaofo-cifar10", in_channels=1)


def test_akamaster_card_says_its_checkpoint_was_selected_on_the_test_set():
    from reslab.weights.sources import SOURCES

    card = SOURCES["akamaster"].card("resnet56")
    text = "\n".join(card.lines())
    assert "selected on the test set" in text and "93.62" in text and "93.39" in text


def test_weights_info_escapes_strings_from_the_file(tmp_path, capsys):
    """A card whose strings carry terminal escape sequences or newlines prints them escaped."""
    import json

    import torch
    from safetensors.torch import save_file

    from reslab.cli import main
    from reslab.models import create_model

    model = create_model("cifar-resnet8", num_classes=10, in_channels=1, width=0.25)
    card = {"source": "evil\x1b[2J\x1b[31m", "origin": "x\nforged line", "license": "l", "dataset": "d",
            "preprocessing": "p"}
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"reslab_weights": "1", "card": json.dumps(card),
                        "arch": json.dumps({"model": "cifar-resnet8", "num_classes": 10, "in_channels": 1,
                                            "width": 0.25})})
    assert main(["weights", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out
    assert not any(line.startswith("forged line") for line in out.splitlines())


def test_printable_escapes_control_characters():
    from reslab.render import printable

    assert printable("a\x1b[31mb\nc\r") == "a\\x1b[31mb\\nc\\r" and printable("ResNet-20 β") == "ResNet-20 β"
