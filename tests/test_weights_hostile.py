"""Hostile weights files: small files whose metadata asks for huge or odd models.

Each is refused with one line (exit code 2 from the CLI, no traceback) before the model is
allocated: the files are read by ``reslab weights info`` / ``eval`` / ``probe`` in a child
process whose address space is capped at 3 GB (the unchecked resnet1202 at width 16 alone
asks for about 8 GB) and whose run is capped in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

import reslab
from reslab.errors import ReslabError
from reslab.training import TrainConfig
from reslab.weights.load import FORMAT_KEY

CARD = {"source": "x", "origin": "x", "license": "x", "dataset": "cifar10", "preprocessing": "x"}
TINY = {"stem.conv.weight": torch.zeros(16, 3, 3, 3), "head.fc.weight": torch.zeros(10, 64)}


def converted(path, arch, state=TINY):
    save_file(state, str(path), metadata={FORMAT_KEY: "1", "arch": json.dumps(arch), "card": json.dumps(CARD)})
    return path


def trained(path, **cfg):
    save_file(TINY, str(path), metadata={"config": json.dumps(TrainConfig(**cfg).to_dict())})
    return path


def hostile_files(tmp_path) -> dict[str, tuple[object, str]]:
    """name -> (file, the words its one-line error must contain)."""
    small = reslab.create_model("cifar-resnet8", width=0.25)
    state = {k: v.clone() for k, v in small.state_dict().items()}
    state["stage1.0.branch.conv1.weight"] = state["stage1.0.branch.conv1.weight"] > 0
    torch.save({"model": TINY, "config": TrainConfig(model="resnet1202", width=4.0).to_dict()}, tmp_path / "deep.pt")
    return {
        "width16": (converted(tmp_path / "w16.safetensors", {"model": "resnet1202", "width": 16}), "width 16"),
        "classes": (converted(tmp_path / "c.safetensors", {"model": "resnet20", "num_classes": 10 ** 9}), "num_classes"),
        "channels": (converted(tmp_path / "ch.safetensors", {"model": "resnet20", "in_channels": 4096}), "in_channels"),
        "pretrained": (converted(tmp_path / "p.safetensors", {"model": "resnet20", "pretrained": True}), "'pretrained'"),
        "ckpt": (converted(tmp_path / "k.safetensors", {"model": "resnet20", "checkpoint_path": "/x"}), "checkpoint_path"),
        "unknown": (converted(tmp_path / "u.safetensors", {"model": "resnet20", "colour": "red"}), "'colour'"),
        "deep": (converted(tmp_path / "d.safetensors", {"model": "cifar-resnet2000"}), "deeper than the 1202"),
        "shape": (converted(tmp_path / "s.safetensors", {"model": "resnet110", "width": 4}), "do not fit"),
        "run16": (trained(tmp_path / "r16.safetensors", model="resnet1202", width=16.0), "width 16"),
        "run4": (trained(tmp_path / "r4.safetensors", model="resnet110", width=4.0), "do not fit"),
        "deep_pt": (tmp_path / "deep.pt", "do not fit"),
        "bool": (converted(tmp_path / "b.safetensors", {"model": "cifar-resnet8", "width": 0.25}, state),
                 "stage1.0.branch.conv1.weight has dtype torch.bool"),
    }


CHILD = textwrap.dedent("""
    import contextlib, io, json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from reslab.cli import main
    out = {}
    for name, argv in json.loads(sys.argv[1]).items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except BaseException as exc:  # a MemoryError or a traceback: the test reports it
                rc = repr(exc)[:200]
        out[name] = [rc, err.getvalue()]
    print(json.dumps(out))
""")


def test_hostile_files_are_refused_before_allocation(tmp_path):
    files = hostile_files(tmp_path)
    argv = {name: ["weights", "info", str(f)] for name, (f, _) in files.items()}
    argv["eval_width16"] = ["eval", str(files["width16"][0])]
    argv["probe_run16"] = ["probe", str(files["run16"][0]), "--out", str(tmp_path / "probe")]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the reslab this test imported
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    expect = {name: words for name, (_, words) in files.items()}
    expect.update(eval_width16="width 16", probe_run16="width 16")
    for name, words in expect.items():
        rc, err = results[name]
        assert rc == 2, f"{name}: {rc} {err}"
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, f"{name}: {err}"
        assert words in err, f"{name}: {err}"
    assert not (tmp_path / "probe").exists()


def test_checkpoint_path_refuses_non_float_weights(tmp_path):
    small = reslab.create_model("cifar-resnet8", width=0.25)
    state = dict(small.state_dict())
    state["head.fc.weight"] = state["head.fc.weight"].to(torch.int64)
    save_file(state, str(tmp_path / "int.safetensors"))
    with pytest.raises(ReslabError, match="head.fc.weight has dtype torch.int64"):
        reslab.create_model("cifar-resnet8", width=0.25, checkpoint_path=str(tmp_path / "int.safetensors"))


def test_checked_files_of_sane_size_still_load(tmp_path):
    """The caps let real nets through: a converted resnet20 loads and computes as saved."""
    net = reslab.create_model("resnet20", shortcut="B").eval()
    path = converted(tmp_path / "ok.safetensors", {"model": "resnet20", "num_classes": 10, "shortcut": "B"},
                     net.state_dict())
    loaded = reslab.load_model(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), net(x))
