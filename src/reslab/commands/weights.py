"""``reslab weights``: list published CIFAR weights, import one, or describe a weights file.

    reslab weights list
    reslab weights import SOURCE MODEL [--file PATH] [--out PATH]
    reslab weights info WEIGHTS
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("weights", help="list, import or describe weights (published CIFAR ResNets)",
                       description="Published CIFAR ResNet weights, pinned by URL and SHA-256 (or the SHA-256 "
                                   "prefix in the published file name), converted exactly to reslab's models.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    a = actions.add_parser("list", help="the published weights reslab can import",
                           description="List each source's models, the accuracy its authors report, the pinned "
                                       "hash (full SHA-256 or file-name prefix) and whether the file is cached.")
    a.set_defaults(func=run_list)

    a = actions.add_parser("import", help="download (or take --file), verify, convert and save one model",
                           description="Download SOURCE's weights for MODEL into the user cache (or take --file), "
                                       "check the hash, convert them to reslab's layout and write a .safetensors "
                                       "file with the model card in its metadata ($RESLAB_WEIGHTS_MIRROR overrides "
                                       "the download address).")
    a.add_argument("source", help="akamaster, chenyaofo-cifar10 or chenyaofo-cifar100")
    a.add_argument("model", help="e.g. resnet56 (see `reslab weights list`)")
    a.add_argument("--file", help="a copy of the published file, downloaded by hand (its hash is still checked)")
    a.add_argument("--out", help="where to write the converted weights "
                                 "(default: ~/.cache/reslab/weights/SOURCE/MODEL.safetensors)")
    a.set_defaults(func=run_import)

    a = actions.add_parser("info", help="the model card of a weights file, run or SOURCE:MODEL",
                           description="Load weights (never running code from the file) and print their model "
                                       "card: source, license, dataset, reported accuracy, preprocessing.")
    a.add_argument("path", metavar="WEIGHTS", help="run directory, .pt, .safetensors, or SOURCE:MODEL")
    a.set_defaults(func=run_info)


def run_list(args) -> int:
    from reslab.weights.download import is_cached, weights_cache_dir
    from reslab.weights.sources import SOURCES

    print(f"{'source':<19} {'model':<11} {'shortcut':<8} {'reported (by the authors)':<44} {'pinned':<14} cached")
    for src in SOURCES.values():
        for pf in src.files.values():
            pinned = "sha256" if pf.full_hash else f"prefix {pf.sha256}"
            cached = "yes" if is_cached(src, pf) else "no"
            print(f"{src.name:<19} {pf.model:<11} {src.shortcut:<8} {pf.reported:<44} {pinned:<14} {cached}")
    print(f"cache: {weights_cache_dir()}; licenses: akamaster BSD-2-Clause, chenyaofo BSD-3-Clause")
    return 0


def run_import(args) -> int:
    import sys

    from reslab.weights.load import import_weights, load_model

    out = import_weights(args.source, args.model, file=args.file, out=args.out,
                         log=lambda msg: print(f"reslab: {msg}", file=sys.stderr))
    print(f"wrote {out}")
    for line in load_model(out).card.lines():
        print(f"  {line}")
    return 0


def run_info(args) -> int:
    from reslab.weights.load import load_model

    from reslab.render import printable

    loaded = load_model(args.path)
    options = ", ".join(f"{k}={v}" for k, v in loaded.arch.items() if k != "model")
    # strings from the file reach the terminal escaped: no escape sequences, no forged lines
    print(printable(f"model          {loaded.arch.get('model')} ({options})"))
    print(printable(f"file           {loaded.path}"))
    for line in loaded.card.lines():
        print(printable(line))
    return 0
