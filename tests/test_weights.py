"""Published CIFAR weights: exact conversion, pinned downloads, model cards, `reslab weights`.

Each source is tested on checkpoint files generated in its exact on-disk format (random
weights, saved the way the source's code saves them) against a re-implementation of the
source's forward pass written here, line for line after its published code:

* akamaster/pytorch_resnet_cifar10 ``resnet.py`` (option A: ``F.pad(x[:, :, ::2, ::2],
  (0, 0, 0, 0, planes//4, planes//4))``) and ``trainer.py`` (``torch.save({'state_dict':
  DataParallel(model).state_dict(), 'best_prec1': ...})``; the published files use the
  legacy, non-zip serialisation);
* chenyaofo/pytorch-cifar-models ``pytorch_cifar_models/resnet.py`` (torchvision-style
  names, 1x1 conv + BN ``downsample``; the release files are bare state dicts).

No network: downloads come from file:// URLs or an http.server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
import urllib.error
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reslab
from reslab.cli import main
from reslab.data import store
from reslab.errors import ReslabError
from reslab.weights import convert, sources
from reslab.weights.download import fetch_pinned, sha256_file, weights_cache_dir
from reslab.weights.sources import SOURCES, PinnedFile

TOL = 1e-4


# ----------------------------------------------------------------------------- akamaster, as published


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class AkaBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4),
                                                            "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class AkaResNet(nn.Module):
    def __init__(self, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(AkaBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


# ----------------------------------------------------------------------------- chenyaofo, as published


class ChenBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ChenResNet(nn.Module):
    def __init__(self, layers, num_classes=10):
        super().__init__()
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, layers[0])
        self.layer2 = self._make_layer(32, layers[1], stride=2)
        self.layer3 = self._make_layer(64, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [ChenBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(ChenBasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        return self.fc(x)


# ----------------------------------------------------------------------------- helpers


def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere, BN statistics included, so no channel is a no-op."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return net.eval()


def inputs(seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def save_akamaster(net: AkaResNet, path: Path, legacy: bool = True, drop_nbt: bool = False) -> Path:
    state = nn.DataParallel(net).state_dict()  # "module." prefix, as trainer.py saves it
    if drop_nbt:  # checkpoints written before PyTorch 0.4 have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "best_prec1": 91.73}, path, _use_new_zipfile_serialization=not legacy)
    return path


def save_chenyaofo(net: ChenResNet, path: Path) -> Path:
    torch.save(net.state_dict(), path)
    return path


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Cache in tmp, no mirror, and only file:// or 127.0.0.1 URLs may be fetched."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("RESLAB_WEIGHTS_MIRROR", raising=False)
    real = store.fetch

    def guarded(url, dest, *args, **kwargs):
        if not (url.startswith("file://") or url.startswith("http://127.0.0.1:")):
            raise urllib.error.URLError("network disabled in tests")
        return real(url, dest, *args, **kwargs)

    monkeypatch.setattr(store, "fetch", guarded)


def pin(monkeypatch, source: str, model: str, path: Path, sha256: str | None = None, url: str | None = None):
    """Point SOURCES[source] at a local file for ``model`` (hash computed unless given)."""
    pf = PinnedFile(model, url or path.as_uri(), sha256 or sha256_file(path), "test error 1.23% (test)")
    monkeypatch.setitem(SOURCES, source, dataclasses.replace(SOURCES[source], files={model: pf}))
    return pf


# ----------------------------------------------------------------------------- exact conversion


@pytest.mark.parametrize("blocks,legacy,drop_nbt", [(1, True, False), (3, True, True), (2, False, False)])
def test_akamaster_conversion_computes_the_same_function(tmp_path, blocks, legacy, drop_nbt):
    ref = randomize(AkaResNet([blocks] * 3), seed=blocks)
    path = save_akamaster(ref, tmp_path / "model.th", legacy=legacy, drop_nbt=drop_nbt)
    name = f"cifar-resnet{6 * blocks + 2}"
    ours = convert.convert_file(SOURCES["akamaster"], name, path)
    assert not ours.training
    assert all(not isinstance(m, LambdaLayer) for m in ours.modules())
    x = inputs(blocks)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert want.std() > 0.1, "logits too flat for the comparison to mean anything"
    assert max_diff(want, got) < TOL


def test_akamaster_weights_copied_in_order_compute_another_function(tmp_path, monkeypatch):
    """The trap the permutation avoids: option A's zero channels sit on both sides in akamaster."""
    ref = randomize(AkaResNet([1, 1, 1]), seed=5)
    path = save_akamaster(ref, tmp_path / "model.th")
    monkeypatch.setattr(convert, "_stream_perms", lambda target, fmt: None)
    naive = convert.convert_file(SOURCES["akamaster"], "cifar-resnet8", path)
    with torch.no_grad():
        assert max_diff(ref(inputs()), naive(inputs())) > 1e-2


@pytest.mark.parametrize("source,classes,blocks", [("chenyaofo-cifar10", 10, 1), ("chenyaofo-cifar100", 100, 3)])
def test_chenyaofo_conversion_computes_the_same_function(tmp_path, source, classes, blocks):
    ref = randomize(ChenResNet([blocks] * 3, num_classes=classes), seed=blocks + classes)
    path = save_chenyaofo(ref, tmp_path / "cifar_resnet.pt")
    ours = convert.convert_file(SOURCES[source], f"cifar-resnet{6 * blocks + 2}", path)
    assert ours.head.fc.out_features == classes
    assert ours.stage2[0].shortcut.conv.stride == (2, 2)  # option B projection
    with torch.no_grad():
        want, got = ref(inputs(1)), ours(inputs(1))
    assert want.std() > 0.1 and max_diff(want, got) < TOL


def test_wrong_depth_or_format_is_one_line_error(tmp_path):
    aka = save_akamaster(randomize(AkaResNet([1, 1, 1]), 0), tmp_path / "aka.th")
    chen = save_chenyaofo(randomize(ChenResNet([1, 1, 1]), 0), tmp_path / "chen.pt")
    with pytest.raises(ReslabError, match="holds a ResNet-8, not a ResNet-20"):
        convert.convert_file(SOURCES["akamaster"], "resnet20", aka)
    with pytest.raises(ReslabError, match="not an akamaster checkpoint"):
        convert.convert_file(SOURCES["akamaster"], "cifar-resnet8", chen)
    with pytest.raises(ReslabError, match="not a chenyaofo"):
        convert.convert_file(SOURCES["chenyaofo-cifar10"], "cifar-resnet8", aka)
    with pytest.raises(ReslabError, match="shape"):  # 10-class file as CIFAR-100 weights
        convert.convert_file(SOURCES["chenyaofo-cifar100"], "cifar-resnet8", chen)


class _Evil:
    marker: Path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_file_that_would_run_code_is_refused(tmp_path):
    evil = _Evil()
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.th"
    torch.save({"state_dict": {}, "x": evil}, path)
    with pytest.raises(ReslabError, match="refused"):
        convert.convert_file(SOURCES["akamaster"], "cifar-resnet8", path)
    with pytest.raises(ReslabError, match="refused"):
        reslab.load_model(path)
    assert not _Evil.marker.exists()


# ----------------------------------------------------------------------------- the pinned table


def test_pinned_table_is_consistent():
    full = []
    for src in SOURCES.values():
        for model, pf in src.files.items():
            assert pf.model == model and pf.url.startswith("https://github.com/")
            assert len(pf.sha256) in (8, 64) and int(pf.sha256, 16) >= 0
            # torch.hub's convention: the file name carries the SHA-256's first 8 digits.
            assert pf.filename.rsplit("-", 1)[1].split(".")[0] == pf.sha256[:8]
            if pf.full_hash:
                full.append(f"{src.name}/{model}")
            card = src.card(model)
            assert card.mean and card.std and card.license and card.reported
    assert full == [f"akamaster/resnet{d}" for d in (20, 32, 44, 56)]
    assert SOURCES["akamaster"].mean == (0.485, 0.456, 0.406)
    assert SOURCES["chenyaofo-cifar10"].std == (0.2023, 0.1994, 0.2010)
    assert sources.sources_for("resnet56") == ["akamaster", "chenyaofo-cifar10", "chenyaofo-cifar100"]
    assert sources.sources_for("resnet110") == ["akamaster"] and sources.sources_for("plain20") == []


# ----------------------------------------------------------------------------- downloads


def test_download_from_file_url_is_verified_and_cached(tmp_path, monkeypatch):
    ref = randomize(AkaResNet([3, 3, 3]), seed=3)
    origin = save_akamaster(ref, tmp_path / "resnet20-origin.th")
    pin(monkeypatch, "akamaster", "resnet20", origin)
    got = fetch_pinned("akamaster", "resnet20")
    assert got.parent == weights_cache_dir() / "akamaster" and got.read_bytes() == origin.read_bytes()
    origin.unlink()  # a second call uses the cache
    assert fetch_pinned("akamaster", "resnet20") == got
    assert [p.name for p in got.parent.iterdir()] == [got.name]


def test_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    origin = save_chenyaofo(randomize(ChenResNet([1, 1, 1]), 0), tmp_path / "cifar10_resnet20-00000000.pt")
    pin(monkeypatch, "chenyaofo-cifar10", "resnet20", origin, sha256="0" * 64)
    with pytest.raises(ReslabError, match="SHA-256 .* expected .*deleted"):
        fetch_pinned("chenyaofo-cifar10", "resnet20")
    folder = weights_cache_dir() / "chenyaofo-cifar10"
    assert not folder.exists() or list(folder.iterdir()) == []
    # an 8-digit prefix is checked too
    pin(monkeypatch, "chenyaofo-cifar10", "resnet20", origin, sha256="ffffffff"
        if not sha256_file(origin).startswith("ffffffff") else "00000000")
    with pytest.raises(ReslabError, match="prefix"):
        fetch_pinned("chenyaofo-cifar10", "resnet20")
    assert not folder.exists() or list(folder.iterdir()) == []


def test_download_over_http_and_unreachable_url(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    origin = save_chenyaofo(randomize(ChenResNet([1, 1, 1]), 1), served / "cifar10_resnet20-x.pt")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        pin(monkeypatch, "chenyaofo-cifar10", "resnet20", origin, url=f"https://example.invalid/{origin.name}")
        monkeypatch.setenv("RESLAB_WEIGHTS_MIRROR", base)  # the mirror replaces the publisher's address
        got = fetch_pinned("chenyaofo-cifar10", "resnet20")
        assert sha256_file(got) == sha256_file(origin)
        got.unlink()
        monkeypatch.setenv("RESLAB_WEIGHTS_MIRROR", base + "/missing")
        with pytest.raises(ReslabError, match="download failed.*--file"):
            fetch_pinned("chenyaofo-cifar10", "resnet20")
        assert list(got.parent.iterdir()) == []
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- create_model / load_model


def test_create_model_pretrained_and_load_model_spec(tmp_path, monkeypatch):
    ref = randomize(AkaResNet([3, 3, 3]), seed=20)
    pin(monkeypatch, "akamaster", "resnet20", save_akamaster(ref, tmp_path / "resnet20.th"))
    x = inputs(7)
    with torch.no_grad():
        want = ref(x)
        for net in (reslab.create_model("resnet20", pretrained="akamaster"),
                    reslab.create_model("resnet20", pretrained=True),
                    reslab.create_model("resnet20.akamaster", pretrained=True)):
            assert max_diff(want, net.eval()(x)) < TOL
        loaded = reslab.load_model("akamaster:resnet20")
        model, config = loaded
        assert config is None and not model.training and max_diff(want, model(x)) < TOL
    card = loaded.card
    assert card.source == "akamaster" and "BSD-2-Clause" in card.license and card.dataset == "cifar10"
    assert "1.23%" in card.reported and "README" in card.reported_by
    assert loaded.arch == {"model": "resnet20", "num_classes": 10, "in_channels": 3, "shortcut": "A"}
    u8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.tensor(card.mean).view(1, 3, 1, 1), torch.tensor(card.std).view(1, 3, 1, 1)
    assert torch.allclose(loaded.preprocess(u8), (u8.float() / 255 - mean) / std)
    for bad, msg in ((dict(pretrained="akamaster", in_channels=1), "in_channels=3"),
                     (dict(pretrained="akamaster", shortcut="B"), "shortcut='A'"),
                     (dict(pretrained="nobody"), "unknown weight source"),
                     (dict(pretrained=True, checkpoint_path="x.pt"), "not both")):
        with pytest.raises(ReslabError, match=msg):
            reslab.create_model("resnet20", **bad)
    with pytest.raises(ReslabError, match="no published weights"):
        reslab.create_model("plain20", pretrained=True)
    with pytest.raises(ReslabError, match="has no weights for"):
        reslab.create_model("resnet110", pretrained="chenyaofo-cifar10")


def test_weights_cli_list_import_info(tmp_path, monkeypatch, capsys):
    ref = randomize(ChenResNet([3, 3, 3], num_classes=100), seed=100)
    origin = save_chenyaofo(ref, tmp_path / "cifar100_resnet20.pt")
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "akamaster" in out and "chenyaofo-cifar100" in out and "prefix 1d1ed7c2" in out and "72.63" in out
    pin(monkeypatch, "chenyaofo-cifar100", "resnet20", origin)
    out_file = tmp_path / "converted" / "r20.safetensors"
    assert main(["weights", "import", "chenyaofo-cifar100", "resnet20", "--out", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert "BSD-3-Clause" in printed and "0.507" in printed
    loaded = reslab.load_model(out_file)
    assert loaded.config is None and loaded.card.source == "chenyaofo-cifar100" and loaded.card.std[0] == 0.2673
    with torch.no_grad():
        assert max_diff(ref(inputs()), loaded.model(inputs())) < TOL
    # default destination: the user cache
    assert main(["weights", "import", "chenyaofo-cifar100", "resnet20"]) == 0
    assert (weights_cache_dir() / "chenyaofo-cifar100" / "resnet20.safetensors").is_file()
    capsys.readouterr()
    assert main(["weights", "info", str(out_file)]) == 0
    assert "reported" in capsys.readouterr().out
    # a hand-fetched copy with the wrong hash: one line, exit 2, nothing written
    other = save_chenyaofo(randomize(ChenResNet([3, 3, 3], num_classes=100), 1), tmp_path / "other.pt")
    bad_out = tmp_path / "bad.safetensors"
    assert main(["weights", "import", "chenyaofo-cifar100", "resnet20", "--file", str(other),
                 "--out", str(bad_out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match" in err and not bad_out.exists()
    for args in (["weights", "import", "nobody", "resnet20"], ["weights", "import", "akamaster", "resnet18"],
                 ["weights", "import", "chenyaofo", "resnet20"]):
        assert main(args) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_hashes_of_generated_files_match_sha256(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"reslab")
    assert sha256_file(p) == hashlib.sha256(b"reslab").hexdigest()


def test_import_of_a_hand_fetched_file_fills_the_cache(tmp_path, monkeypatch, capsys):
    ref = randomize(AkaResNet([3, 3, 3]), seed=9)
    by_hand = save_akamaster(ref, tmp_path / "resnet20-fromabrowser.th")
    pin(monkeypatch, "akamaster", "resnet20", by_hand, url=(tmp_path / "gone" / "resnet20-x.th").as_uri())
    with pytest.raises(ReslabError, match="download failed.*--file"):
        reslab.create_model("resnet20", pretrained="akamaster")
    assert main(["weights", "import", "akamaster", "resnet20", "--file", str(by_hand)]) == 0
    assert "akamaster/resnet20.safetensors" in capsys.readouterr().out
    net = reslab.create_model("resnet20", pretrained="akamaster").eval()  # no download: the cache has it
    with torch.no_grad():
        assert max_diff(ref(inputs()), net(inputs())) < TOL
