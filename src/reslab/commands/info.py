"""``reslab info MODEL``: parameters, FLOPs, weighted layers and per-stage output shapes."""

from __future__ import annotations

from reslab.errors import ReslabError


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a model: parameters, FLOPs, layers, stage shapes",
                       description="Describe a model: parameters, FLOPs (torch.utils.flop_counter), "
                                   "weighted layers, and each stage's output shape.")
    p.add_argument("model", help="model name, e.g. resnet56, plain56, resnet50 (see `reslab info --list`)",
                   nargs="?")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"),
                   help="input shape (default: 3 32 32 for CIFAR nets, 3 224 224 for ImageNet nets)")
    p.add_argument("--num-classes", type=int, default=None, help="classes of the head (default: 10 CIFAR, 1000 ImageNet)")
    p.add_argument("--shortcut", choices=["A", "B", "C"], default=None, help="shortcut option (residual nets)")
    p.add_argument("--depth", type=int, default=None, help="hidden layers of an mlp (mlp only; required for it)")
    p.add_argument("--list", action="store_true", help="list the model names and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from reslab.models import list_models
    from reslab.models.summary import summarize

    if args.list:
        print("\n".join(list_models()))
        return 0
    if not args.model:
        raise ReslabError("name a model, e.g. `reslab info resnet56`; `reslab info --list` lists them")
    from reslab.models import model_family

    kwargs = {}
    family = model_family(args.model)
    if family == "mlp":
        if args.depth is None:
            raise ReslabError("mlp needs --depth N (hidden layers), e.g. `reslab info mlp --depth 24`")
        if args.depth < 1:
            raise ReslabError(f"--depth must be >= 1, got {args.depth}")
        kwargs["depth"] = args.depth
        if args.num_classes is not None or args.shortcut is not None:
            raise ReslabError("--num-classes and --shortcut are for ResNets; an mlp has one output")
    elif args.depth is not None:
        raise ReslabError(f"--depth is for mlp only; {args.model} has its depth in its name")
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise ReslabError(f"--num-classes must be >= 1, got {args.num_classes}")
        kwargs["num_classes"] = args.num_classes
    if args.shortcut is not None:
        kwargs["shortcut"] = args.shortcut
    s = summarize(args.model, tuple(args.input_size) if args.input_size else None, **kwargs)
    print(f"model            {s.name}")
    print(f"input            {' x '.join(map(str, s.input_size))}")
    print(f"parameters       {s.params:,}")
    print(f"weighted layers  {s.weighted_layers}")
    print(f"FLOPs            {s.flops / 1e9:.3f} G  ({s.macs / 1e9:.3f} G multiply-adds, the paper's unit)")
    if s.stage_shapes:
        print("stage outputs")
        for name, shape in s.stage_shapes:
            print(f"  {name:<8} {' x '.join(map(str, shape))}")
    return 0
