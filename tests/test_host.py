"""keep_freed_memory(): a CPU training step stops page-faulting its activations back in."""

import json
import os
import platform
import subprocess
import sys

import pytest

# One thread and a fresh process per arm: the allocator's state is the thing being measured.
PROBE = r"""
import json, resource
import torch, torch.nn.functional as F
from reslab.training.host import keep_freed_memory
torch.set_num_threads(1)
applied = keep_freed_memory()
assert keep_freed_memory() is applied  # idempotent
torch.manual_seed(0)
m = __import__("reslab").create_model("resnet20", in_channels=3).to(memory_format=torch.channels_last)
x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
def step():
    F.cross_entropy(m(x), y).backward()
    m.zero_grad(set_to_none=True)
for _ in range(3):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(json.dumps({"applied": applied, "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 4}))
"""


def probe(malloc_env: str | None) -> dict:
    # An allocator preloaded or tuned from outside would change the baseline being compared.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RESLAB_MALLOC", "LD_PRELOAD", "GLIBC_TUNABLES") and not k.startswith("MALLOC_")}
    if malloc_env is not None:
        env["RESLAB_MALLOC"] = malloc_env
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_page_faults():
    tuned, system = probe(None), probe("system")
    assert tuned["applied"] is True and system["applied"] is False
    # ResNet-20 at batch 128 frees ~100 MiB of activations and gradients per step. glibc's
    # defaults hand most of it back to the kernel (munmap, heap trimming) and fault it in again.
    assert system["faults_per_step"] > 5000, system
    assert tuned["faults_per_step"] < system["faults_per_step"] / 5, (tuned, system)


def test_train_restores_process_wide_settings(tmp_path):
    """train() sets flush-denormal, deterministic algorithms and the global seeds for its run,
    and puts them back when it returns (the degradation experiment calls it again and again)."""
    import random

    import numpy as np
    import torch

    import reslab
    from reslab.training.host import flush_denormal_enabled

    tiny = {"model": "cifar-resnet8", "width": 0.25, "dataset": "synthetic", "train_subset": 64, "val_size": 32,
            "batch_size": 32, "iterations": 2, "eval_every": 0, "log_every": 1, "ckpt_every": 0, "amp": "off",
            "device": "cpu", "deterministic": True, "seed": 7}
    torch.set_flush_denormal(False)
    assert not flush_denormal_enabled()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    try:
        reslab.train(tiny, tmp_path / "run", quiet=True)
        assert not flush_denormal_enabled()
        assert not torch.are_deterministic_algorithms_enabled()
        got = (torch.rand(3), np.random.rand(3), random.random())
        assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
        # and the other way round: settings that were on stay on
        torch.set_flush_denormal(True)
        torch.use_deterministic_algorithms(True, warn_only=True)
        reslab.train({**tiny, "deterministic": False}, tmp_path / "run2", quiet=True)
        assert flush_denormal_enabled()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.set_flush_denormal(False)
        torch.use_deterministic_algorithms(False)
