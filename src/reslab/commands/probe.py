"""``reslab probe SOURCE``: a gradient-health report for a model at initialisation (or as saved).

SOURCE is a registered model name (``resnet56``, ``plain20``, ``mlp`` with ``--depth``), a
reslab run directory / ``.pt`` / ``.safetensors`` file / ``SOURCE:MODEL`` (read with
:func:`reslab.load_model`, which runs no code from the file), or ``path/to/file.py:factory``:
that file is imported and ``factory()`` called to build the model, which **runs the
user's code** with the user's permissions.  Inputs are random N(0, 1) tensors of
``--input-size`` (seeded; for trained weights, default: one image of their dataset).  See :mod:`reslab.probes.health` for what is measured.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from reslab.errors import ReslabError

_FILE_FACTORY = re.compile(r"^(?P<file>.+\.py):(?P<factory>[A-Za-z_][A-Za-z0-9_]*)$")


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="gradient-health report for any model: vanishing/exploding, shattering, activity",
                       description="Probe a model's gradients at initialisation: per-module gradient norms of all "
                                   "parameters (first/last < 1e-2 vanishing, > 1e2 exploding), shattering of the "
                                   "input-gradient along a 1-D path (lag-1 autocorrelation closer to white "
                                   "noise's than to brown noise's), "
                                   "activation "
                                   "activity and BatchNorm statistics. Writes results.json, report.md, report.html.")
    p.add_argument("source", help="a model name (resnet56), a run directory or weights file, SOURCE:MODEL, or "
                                  "path/to/file.py:factory (imports the file and calls factory(): RUNS THAT CODE)")
    p.add_argument("--input-size", nargs="+", type=int, metavar="D",
                   help="shape of one input, e.g. 3 32 32 (default for registered models: 3 32 32 CIFAR, "
                        "3 224 224 ImageNet, 1 for mlp; required for a file.py:factory)")
    p.add_argument("--batch", type=int, default=32, help="inputs in the batch (default: 32)")
    p.add_argument("--depth", type=int, default=None, help="hidden layers of an mlp (mlp only)")
    p.add_argument("--num-classes", type=int, default=None, help="classes of a registered ResNet's head")
    p.add_argument("--output", default=None,
                   help="scalar whose input-gradient is probed: a logit index, or 'loss' (cross-entropy against "
                        "random labels); default: the logit predicted at the path's centre")
    p.add_argument("--path", choices=["line", "segment"], default="line",
                   help="line: through inputs[0] in a random direction; segment: inputs[0] to inputs[1]")
    p.add_argument("--points", type=int, default=256, help="points on the path (default: 256)")
    p.add_argument("--radius", type=float, default=2.0, help="half-length of the line, in input std units (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's init, inputs and path (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: unchanged)")
    p.add_argument("--out", default="reslab-probe",
                   help="output directory (default: reslab-probe); a non-empty folder that an earlier probe did not "
                        "write is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that is not a probe's output (its results.json, report.md, "
                        "report.html and probe.png are replaced)")
    p.add_argument("--no-figure", action="store_true", help="skip probe.png (and the figure in report.html)")
    p.set_defaults(func=run)


def load_factory(spec: str):
    """``path/to/file.py:factory`` → ``factory()``.  Runs the file's code."""
    m = _FILE_FACTORY.match(spec)
    if not m:
        raise ReslabError(f"{spec}: expected path/to/file.py:factory")
    path = Path(m["file"]).expanduser()
    if not path.is_file():
        raise ReslabError(f"{path}: no such file")
    name = f"reslab_probe_user_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as err:  # sys.exit() in user code must not end `reslab probe` as if it had succeeded
        raise ReslabError(f"{path}: importing it called sys.exit({err.code!r}); no model, no report") from None
    except Exception as err:
        raise ReslabError(f"{path}: importing it failed: {type(err).__name__}: {err}") from None
    finally:
        sys.path.pop(0)
    factory = getattr(module, m["factory"], None)
    if not callable(factory):
        raise ReslabError(f"{path}: has no callable {m['factory']!r}")
    try:
        return factory()
    except SystemExit as err:
        raise ReslabError(f"{spec}: calling it called sys.exit({err.code!r}); no model, no report") from None
    except Exception as err:
        raise ReslabError(f"{spec}: calling it failed: {type(err).__name__}: {err}") from None


def _trained_input_size(loaded) -> tuple[int, ...]:
    """One input of the dataset the weights were trained on (Fashion-MNIST: 1 x 28 x 28)."""
    from reslab.data import get_info

    try:
        return tuple(get_info(loaded.card.dataset).shape)
    except ReslabError:  # a dataset this reslab does not know: the model's channels, CIFAR's size
        return (int(loaded.arch.get("in_channels", 3)), 32, 32)


def build_source(args):
    """``(model, input_size, name)`` for the command's SOURCE."""
    from torch import nn

    src = args.source
    size = tuple(args.input_size) if args.input_size else None
    if size is not None and any(s < 1 for s in size):
        raise ReslabError(f"--input-size must be positive integers, got {' '.join(map(str, size))}")
    if _FILE_FACTORY.match(src):
        model = load_factory(src)
        if not isinstance(model, nn.Module):
            raise ReslabError(f"{src}: returned a {type(model).__name__}, not a torch.nn.Module")
        if size is None:
            raise ReslabError("a file.py:factory model needs --input-size (the shape of one input)")
        return model, size, src
    p = Path(src).expanduser()
    if p.exists() or ":" in src:
        from reslab import load_model

        loaded = load_model(src)
        return loaded.model, size or _trained_input_size(loaded), src
    from reslab.models import create_model, spec

    model_spec = spec(src)  # an unknown name is one ReslabError line listing the valid ones
    kwargs = {}
    if model_spec.family == "mlp":
        if args.depth is None:
            raise ReslabError("mlp needs --depth N, e.g. `reslab probe mlp --depth 24`")
        kwargs["depth"] = args.depth
        if size is not None:
            if len(size) != 1:
                raise ReslabError(f"an mlp takes flat inputs: --input-size N, got {' '.join(map(str, size))}")
            kwargs["in_features"] = size[0]
    else:
        if args.depth is not None:
            raise ReslabError(f"--depth is for mlp only; {src} has its depth in its name")
        if size is not None:
            if len(size) != 3:
                raise ReslabError(f"--input-size must be C H W for {src}, got {' '.join(map(str, size))}")
            kwargs["in_channels"] = size[0]
        if args.num_classes is not None:
            if args.num_classes < 1:
                raise ReslabError(f"--num-classes must be >= 1, got {args.num_classes}")
            kwargs["num_classes"] = args.num_classes
    size = size or model_spec.input_shape
    return create_model(src, **kwargs), size, src


def run(args) -> int:
    import torch

    from reslab.training.host import torch_threads
    from reslab.probes import render_probe
    from reslab.probes.health import probe

    if args.batch < 2:
        raise ReslabError(f"--batch must be >= 2, got {args.batch}")
    if args.points < 4:
        raise ReslabError(f"--points must be >= 4, got {args.points}")
    if args.threads is not None and args.threads < 1:
        raise ReslabError(f"--threads must be >= 1, got {args.threads}")
    output = args.output
    if output is not None and output != "loss":
        try:
            output = int(output)
        except ValueError:
            raise ReslabError(f"--output must be a logit index or 'loss', got {output!r}") from None
    render_probe.check_out(args.out, overwrite=args.overwrite)  # before any user code runs
    with torch_threads(args.threads):
        torch.manual_seed(args.seed)
        model, size, name = build_source(args)
        g = torch.Generator().manual_seed(args.seed)
        x = torch.randn((args.batch, *size), generator=g)
        targets = None
        if output == "loss":
            from reslab.probes.shattering import grid_batch_stats

            with torch.no_grad(), grid_batch_stats(model):
                try:
                    out = model(x[:2])
                except Exception as err:
                    raise ReslabError(f"the model failed on inputs of shape {tuple(x[:2].shape)}: "
                                      f"{type(err).__name__}: {err}") from None
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
                raise ReslabError("--output loss needs a classifier with (N, C) outputs")
            targets = torch.randint(out.shape[1], (args.batch,), generator=g)
        rep = probe(model, x, targets, output=output, path=args.path, points=args.points, radius=args.radius,
                    seed=args.seed, name=name)
        paths = render_probe.write(rep, args.out, figures=not args.no_figure, overwrite=args.overwrite)
    print(f"[probe] {name}: " + ("no problem flagged" if rep.healthy else "; ".join(rep.findings)))
    print(f"report: {paths['html']}")
    return 0
