"""What ``reslab info`` reports: parameters, FLOPs, weighted layers, per-stage shapes.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a
multiply-add as 2 FLOPs; the paper's "FLOPs" are multiply-adds, so both are reported.
The model runs on the ``meta`` device: shapes and counts without allocating or computing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reslab.errors import ReslabError
from reslab.models.registry import create_model, model_family, spec
from reslab.models.resnet import weighted_layers


@dataclass
class ModelSummary:
    name: str
    input_size: tuple[int, ...]
    params: int
    flops: int  # forward FLOPs for one input, multiply-add = 2
    weighted_layers: int
    stage_shapes: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def macs(self) -> float:
        return self.flops / 2


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(example)
    return int(counter.get_total_flops())


def summarize(name: str, input_size: tuple[int, ...] | None = None, **model_kwargs) -> ModelSummary:
    family = model_family(name)
    if input_size is None:
        input_size = spec(name).input_shape
        if "in_channels" in model_kwargs and family != "mlp":
            input_size = (model_kwargs["in_channels"],) + input_size[1:]
    elif family != "mlp":
        if len(input_size) != 3 or any(int(s) < 1 for s in input_size):
            raise ReslabError(f"--input-size must be three positive integers C H W, got {' '.join(map(str, input_size))}")
        model_kwargs.setdefault("in_channels", int(input_size[0]))
    with torch.device("meta"):
        model = create_model(name, **model_kwargs)
    model.eval()
    shapes: list[tuple[str, tuple[int, ...]]] = []
    hooks = []
    if hasattr(model, "stages"):
        for stage_name, module in model.stages():
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out, n=stage_name: shapes.append((n, tuple(out.shape[1:])))))
    example = torch.empty((1, *input_size), device="meta")
    try:
        flops = count_flops(model, example)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReslabError(f"input size {' '.join(map(str, input_size))} does not fit {name}: {first}") from None
    finally:
        for h in hooks:
            h.remove()
    return ModelSummary(name=name, input_size=tuple(input_size), params=sum(p.numel() for p in model.parameters()),
                        flops=flops, weighted_layers=weighted_layers(model), stage_shapes=shapes)
