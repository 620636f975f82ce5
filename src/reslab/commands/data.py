"""``reslab data``: list the datasets, describe one, verify its checksums, or download it.

    reslab data list
    reslab data info NAME [--data-dir D]
    reslab data verify NAME [--data-dir D]
    reslab data download NAME [--dest D]
"""

from __future__ import annotations

import numpy as np

from reslab.errors import ReslabError


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="list, describe, verify or download datasets",
                       description="Datasets: where reslab finds them (--data-dir, $RESLAB_DATA, the system "
                                   "copy, ~/.cache/reslab), their sizes and classes, and their checksums.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    a = actions.add_parser("list", help="the dataset names and where each is found",
                           description="List the datasets and where each one is found (nothing is downloaded).")
    a.add_argument("--data-dir", default=None, help="folder searched first")
    a.set_defaults(func=run_list)

    a = actions.add_parser("info", help="sizes, shape, classes and location of one dataset",
                           description="Load both splits of a dataset (never downloads) and describe them.")
    a.add_argument("name", help="dataset name (see `reslab data list`)")
    a.add_argument("--data-dir", default=None, help="folder searched first")
    a.set_defaults(func=run_info)

    a = actions.add_parser("verify", help="check the files against the published checksums",
                           description="Check a dataset's files against the publishers' MD5 checksums; "
                                       "exit code 1 if any differs.")
    a.add_argument("name", help="dataset name (see `reslab data list`)")
    a.add_argument("--data-dir", default=None, help="folder searched first")
    a.set_defaults(func=run_verify)

    a = actions.add_parser("download", help="fetch the published files into the cache and verify them",
                           description="Download a dataset from its publisher ($RESLAB_DATA_MIRROR overrides the "
                                       "address) and check each file's MD5 before keeping it.")
    a.add_argument("name", help="dataset name (see `reslab data list`)")
    a.add_argument("--dest", default=None, help="folder to download into (default: ~/.cache/reslab/NAME)")
    a.set_defaults(func=run_download)


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def run_list(args) -> int:
    from reslab.data import DATASETS, SPLITS
    from reslab.data.store import locate

    print(f"{'name':<14} {'classes':>7}  {'shape':<8} {'train':>6} {'test':>6}  found")
    for info in DATASETS.values():
        if info.format == "synthetic":
            where = "generated on demand"
        else:
            locs = [locate(info, s, args.data_dir) for s in SPLITS]
            where = locs[0].describe() if all(locs) else f"not found (get it from {info.provider})"
        print(f"{info.name:<14} {info.num_classes:>7}  {_shape(info.shape):<8} {info.num_train:>6} "
              f"{info.num_test:>6}  {where}")
    return 0


def run_info(args) -> int:
    from reslab.data import channel_stats, get_info, load_arrays
    from reslab.data.store import dataset_cache_dir, locate, not_found_message

    info = get_info(args.name)
    if info.format != "synthetic" and not all(locate(info, s, args.data_dir) for s in ("train", "test")):
        raise ReslabError(f"{not_found_message(info, args.data_dir)}; or run `reslab data download {info.name}` "
                          f"to fetch them into {dataset_cache_dir(info)}")
    arrays = {s: load_arrays(info.name, s, args.data_dir, download=False) for s in ("train", "test")}
    print(f"dataset      {info.name}: {info.description}")
    if info.citation:
        print(f"source       {info.citation}")
    for split, (images, labels) in arrays.items():
        where = "generated" if info.format == "synthetic" else locate(info, split, args.data_dir).describe()
        counts = np.bincount(labels, minlength=info.num_classes)
        print(f"{split:<12} {len(images)} images, {_shape(images.shape[1:])} uint8, "
              f"{counts.min()}-{counts.max()} per class; {where}")
    print(f"classes      {info.num_classes}: {', '.join(info.class_names)}")
    n_train = len(arrays["train"][0])
    val = min(info.default_val_size, n_train)
    print(f"validation   {val} training images held out by default ({n_train - val}/{val})")
    mean, std = channel_stats(arrays["train"][0])
    print(f"pixel stats  mean {', '.join(f'{m:.4f}' for m in mean)}; std {', '.join(f'{s:.4f}' for s in std)} "
          "(training split, [0, 1] units)")
    return 0


def run_verify(args) -> int:
    from reslab.data import get_info
    from reslab.data.verify import verify

    info = get_info(args.name)
    if info.format == "synthetic":
        print(f"{info.name} is generated; there are no files to verify")
        return 0
    checks = verify(info, args.data_dir)
    for c in checks:
        print(f"{'ok ' if c.ok else 'BAD'}  {c.path}  {c.detail}")
    bad = sum(not c.ok for c in checks)
    print(f"{info.name}: {len(checks) - bad} of {len(checks)} files match the published checksums")
    return 1 if bad else 0


def run_download(args) -> int:
    from reslab.data import get_info
    from reslab.data.store import download

    info = get_info(args.name)
    if info.format == "synthetic":
        raise ReslabError(f"{info.name} is generated on demand; there is nothing to download")
    dest = download(info, args.dest, log=print)
    print(f"{info.name}: {len(info.downloads)} file(s) in {dest}, MD5 verified")
    return 0
