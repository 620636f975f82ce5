"""hubconf.py: torch.hub.load(repo_dir, name, source="local") for every registered model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import reslab
from reslab.errors import ReslabError
from reslab.models import list_models
from reslab.weights.download import sha256_file
from reslab.weights.sources import SOURCES, PinnedFile

REPO = Path(__file__).resolve().parents[1]


def _hubconf():
    """hubconf.py imported the way torch.hub.list/help import it (they only take GitHub repos)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hub_lists_every_registered_model():
    hub = _hubconf()
    assert hub.dependencies == ["torch"]
    # torch.hub.list's rule: public callables are the entry points.
    entries = {f for f in dir(hub) if callable(getattr(hub, f)) and not f.startswith("_")}
    assert entries == set(list_models())


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet18"])
def test_hub_load_builds_the_registry_model(name):
    net = torch.hub.load(str(REPO), name, source="local", trust_repo=True, num_classes=7)
    ref = reslab.create_model(name, num_classes=7)
    assert type(net) is type(ref) and net.state_dict().keys() == ref.state_dict().keys()
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ref.parameters())


def test_hub_help_names_the_sources():
    hub = _hubconf()
    assert "akamaster" in hub.resnet56.__doc__ and "none" in hub.plain56.__doc__


def test_hub_pretrained_uses_the_pinned_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RESLAB_WEIGHTS_MIRROR", raising=False)
    src = reslab.create_model("resnet20", shortcut="B")  # stands in for a chenyaofo file
    from reslab.weights.convert import source_key

    state = {source_key("chenyaofo", k): v for k, v in src.state_dict().items()}
    f = tmp_path / "cifar10_resnet20-test.pt"
    torch.save(state, f)
    pf = PinnedFile("resnet20", f.as_uri(), sha256_file(f), "top-1 accuracy 0% (test)")
    monkeypatch.setitem(SOURCES, "chenyaofo-cifar10", dataclasses.replace(SOURCES["chenyaofo-cifar10"],
                                                                          files={"resnet20": pf}))
    net = torch.hub.load(str(REPO), "resnet20", source="local", trust_repo=True, pretrained="chenyaofo-cifar10")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), src.eval()(x), atol=1e-5)
    with pytest.raises(ReslabError, match="no published weights"):
        torch.hub.load(str(REPO), "plain20", source="local", trust_repo=True, pretrained=True)
