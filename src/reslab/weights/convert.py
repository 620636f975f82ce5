"""Convert published CIFAR ResNet checkpoints to reslab's module names and channel order.

Every reslab parameter and buffer is mapped, by name, to one tensor of the source file;
a tensor left over, a missing one or a shape that differs is an error (one line).

akamaster (``pytorch_resnet_cifar10/resnet.py``)
    ``conv1``/``bn1`` stem, ``layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2}``, ``linear`` head,
    all under ``module.`` (the checkpoint holds a ``DataParallel`` state dict under
    ``"state_dict"``, next to ``best_prec1`` and sometimes ``epoch``).  Its option A
    shortcut is ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``: the
    identity channels land in the *middle* (channels ``planes//4 … planes//4 + in - 1``),
    zeros on both sides.  reslab's :class:`~reslab.models.blocks.ZeroPadShortcut` puts
    them *first*.  Copied in order, the weights would compute a different function, so
    the import **permutes the residual stream's channels**: in each stage, reslab channel
    ``j`` holds akamaster channel ``perm[j]``, where ``perm`` lists the identity channels
    first (in the previous stage's order) and then the zero-padded ones.  Each block's
    ``conv1`` input channels, ``conv2`` output channels, ``bn2`` and the head's input are
    re-indexed by ``perm``; the channels inside a block are untouched.  The result is a
    standard reslab ``resnetN`` (option A) computing the same function, up to float
    rounding (the convolutions sum the same terms in another order).

chenyaofo (``pytorch_cifar_models/resnet.py``)
    torchvision names: ``conv1``/``bn1`` stem, ``layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2}``,
    ``layer{2,3}.0.downsample.{0,1}`` (1x1 conv with the stride + BN where the shape
    changes: reslab's option B), ``fc`` head.  The release file is the bare state dict.
    No permutation is needed.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.weights.sources import Source

_BLOCK = re.compile(r"^stage(\d+)\.(\d+)\.branch\.(conv1|bn1|conv2|bn2)\.(\w+)$")
_PROJ = re.compile(r"^stage(\d+)\.(\d+)\.shortcut\.(conv|bn)\.(\w+)$")


def torch_load_safe(path: str | Path):
    """``torch.load(weights_only=True)``: tensors and plain values only, never code."""
    path = Path(path)
    if not path.is_file():
        raise ReslabError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch.save: a zip, or (legacy) a pickle
        raise ReslabError(f"{path}: not a readable PyTorch file (neither a zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise ReslabError(f"{path}: refused: the file holds more than tensors and plain values and could run code "
                          f"when loaded ({first[:160]})") from None
    except Exception as err:  # noqa: BLE001 - a damaged file raises many types; all mean "not readable"
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ReslabError(f"{path}: not a readable PyTorch file ({first[:160]})") from None


def source_key(fmt: str, key: str) -> str:
    """The name in a ``fmt`` checkpoint of reslab's ``key`` (without akamaster's ``module.``)."""
    if key.startswith("stem.conv."):
        return "conv1." + key[len("stem.conv."):]
    if key.startswith("stem.bn."):
        return "bn1." + key[len("stem.bn."):]
    if key.startswith("head.fc."):
        return ("linear." if fmt == "akamaster" else "fc.") + key[len("head.fc."):]
    m = _BLOCK.match(key)
    if m:
        return f"layer{m[1]}.{m[2]}.{m[3]}.{m[4]}"
    m = _PROJ.match(key)
    if m and fmt == "chenyaofo":
        return f"layer{m[1]}.{m[2]}.downsample.{0 if m[3] == 'conv' else 1}.{m[4]}"
    raise ReslabError(f"{fmt} checkpoints have no counterpart of reslab's {key}")


def unwrap_source(fmt: str, obj, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint saved the way ``fmt`` saves it."""
    if fmt == "akamaster":
        if not (isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict)):
            raise ReslabError(f"{path}: not an akamaster checkpoint (expected a dict with a 'state_dict' entry)")
        state = obj["state_dict"]
        if not state or not all(isinstance(k, str) and k.startswith("module.") for k in state):
            raise ReslabError(f"{path}: not an akamaster checkpoint (its state dict keys lack DataParallel's 'module.')")
        state = {k[len("module."):]: v for k, v in state.items()}
    elif fmt == "chenyaofo":
        state = obj
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            raise ReslabError(f"{path}: not a chenyaofo release file (those are bare state dicts, this has 'state_dict')")
        if not (isinstance(state, dict) and "fc.weight" in state and "conv1.weight" in state):
            raise ReslabError(f"{path}: not a chenyaofo CIFAR ResNet state dict (no conv1.weight / fc.weight)")
    else:
        raise ReslabError(f"unknown checkpoint format {fmt!r}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReslabError(f"{path}: entry {bad[0]!r} is not a tensor")
    return state


def _depth_of(state: dict[str, torch.Tensor]) -> int | None:
    blocks = {int(m[1]) for k in state for m in [re.match(r"^layer1\.(\d+)\.", k)] if m}
    return 6 * (max(blocks) + 1) + 2 if blocks else None


def _stream_perms(target: nn.Module, fmt: str) -> list[torch.Tensor] | None:
    """akamaster only: per stage, reslab channel j <- source channel perm[j]."""
    if fmt != "akamaster":
        return None
    perms: list[torch.Tensor] = []
    prev: torch.Tensor | None = None
    for name in target.stage_names:
        stage = getattr(target, name)
        out_ch = stage[0].branch.conv2.out_channels
        in_ch = stage[0].branch.conv1.in_channels
        if prev is None or in_ch == out_ch:
            perm = torch.arange(out_ch) if prev is None else prev
        else:
            pad = out_ch // 4  # akamaster: planes // 4 zero channels before and after
            if in_ch + 2 * pad != out_ch:
                raise ReslabError(f"akamaster's option A pads {pad} channels on each side, which cannot take "
                                  f"{in_ch} to {out_ch} channels")
            rest = [c for c in range(out_ch) if not pad <= c < pad + in_ch]
            perm = torch.cat([pad + prev, torch.tensor(rest, dtype=torch.long)])
        perms.append(perm)
        prev = perm
    return perms


def convert_state(src: Source, state: dict[str, torch.Tensor], target: nn.Module,
                  path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """Map a source state dict onto ``target``'s names and channel order (checked)."""
    fmt = src.format
    want = target.state_dict()
    expected_depth = 6 * len(target.stage1) + 2
    got_depth = _depth_of(state)
    if got_depth is not None and got_depth != expected_depth:
        raise ReslabError(f"{path}: holds a ResNet-{got_depth}, not a ResNet-{expected_depth}")
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, ref in want.items():
        sk = source_key(fmt, key)
        if sk not in state:
            if key.endswith("num_batches_tracked"):  # absent from checkpoints of old PyTorch versions
                out[key] = torch.zeros_like(ref)
                continue
            raise ReslabError(f"{path}: missing {sk} (for reslab's {key})")
        t = state[sk]
        if tuple(t.shape) != tuple(ref.shape):
            raise ReslabError(f"{path}: {sk} has shape {tuple(t.shape)}, reslab's {key} needs {tuple(ref.shape)}")
        out[key] = t.detach().to(dtype=ref.dtype).clone()
        used.add(sk)
    extra = sorted(set(state) - used)
    if extra:
        raise ReslabError(f"{path}: {len(extra)} tensor(s) with no place in reslab's model, e.g. {extra[0]}")

    perms = _stream_perms(target, fmt)
    if perms is not None:
        for s, name in enumerate(target.stage_names):
            for b in range(len(getattr(target, name))):
                p_in = perms[s - 1] if (b == 0 and s > 0) else perms[s]
                pre = f"{name}.{b}.branch."
                out[pre + "conv1.weight"] = out[pre + "conv1.weight"][:, p_in].contiguous()
                out[pre + "conv2.weight"] = out[pre + "conv2.weight"][perms[s]].contiguous()
                for buf in ("weight", "bias", "running_mean", "running_var"):
                    out[pre + "bn2." + buf] = out[pre + "bn2." + buf][perms[s]].contiguous()
        out["head.fc.weight"] = out["head.fc.weight"][:, perms[-1]].contiguous()
    return out


def build_target(src: Source, model: str) -> nn.Module:
    from reslab.models.registry import create_model

    return create_model(model, num_classes=src.num_classes, shortcut=src.shortcut)


def convert_file(src: Source, model: str, path: str | Path) -> nn.Module:
    """A reslab ``model`` holding the weights of ``path``, a checkpoint in ``src``'s format
    (no hash check here: see :func:`reslab.weights.download.verify_file`).  Eval mode."""
    state = unwrap_source(src.format, torch_load_safe(path), path)
    target = build_target(src, model)
    target.load_state_dict(convert_state(src, state, target, path))
    return target.eval()
