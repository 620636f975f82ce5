"""Published CIFAR ResNet weights that reslab imports, pinned by URL and hash.

Two sources, each read from its own code before writing the converters:

``akamaster``
    Yerlan Idelbayev, *Proper ResNet Implementation for CIFAR10/CIFAR100 in PyTorch*,
    https://github.com/akamaster/pytorch_resnet_cifar10 (BSD-2-Clause).  ResNet-20/32/44/56/110/1202
    with option A shortcuts, saved by ``trainer.py`` as ``{"state_dict": DataParallel state
    dict ("module." prefix), "best_prec1": ...}``.  Inputs: ``ToTensor()`` then
    ``Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`` (``trainer.py``).
``chenyaofo-cifar10`` / ``chenyaofo-cifar100``
    Yaofo Chen, *PyTorch CIFAR Models*, https://github.com/chenyaofo/pytorch-cifar-models
    (BSD-3-Clause).  ResNet-20/32/44/56 with 1x1 conv + BN projections where the shape
    changes (option B), torchvision-style names, a plain state dict in a GitHub release.
    Inputs: ``ToTensor()`` then the mean/std of ``conf/cifar10.conf`` / ``conf/cifar100.conf``
    in chenyaofo/image-classification-codebase (the training logs on the repo's ``logs``
    branch print the same values).

Hashes
------
``sha256`` is either a full SHA-256 (64 hex digits) or only the 8-hex-digit prefix that
the file's published name carries (torch.hub's ``name-<sha256[:8]>.ext`` convention):

* akamaster ResNet-20/32/44/56: **full SHA-256, computed by the reslab authors** from the
  files as stored in the akamaster repository (commit d5489e8995e81e91ce6b1d69dcc98ad579b0b153);
  each begins with the prefix in its file name, which confirms the convention for this repo.
* akamaster ResNet-110/1202: **prefix only** (from the file names); the files were not
  available to hash.
* chenyaofo (all eight): **prefix only** (from the release file names); the release
  files were not available to hash.

That chenyaofo's name suffixes are SHA-256 prefixes is torch.hub's naming convention, not
something checked here (their loader passes ``check_hash=False``); were one not, its download
would fail with a hash mismatch rather than load a wrong file.
A prefix catches a broken or swapped download, not a deliberate collision (32 bits).
Whatever the hash, the file is loaded with ``torch.load(weights_only=True)``, which
cannot run code.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from reslab.errors import ReslabError

AKAMASTER_REPO = "https://github.com/akamaster/pytorch_resnet_cifar10"
AKAMASTER_COMMIT = "d5489e8995e81e91ce6b1d69dcc98ad579b0b153"
CHENYAOFO_REPO = "https://github.com/chenyaofo/pytorch-cifar-models"
CHENYAOFO_COMMIT = "786c16252c0fc58ee9adac063f8337cc4a7a497a"


@dataclass(frozen=True)
class ModelCard:
    """What a set of weights is and what it expects.

    ``mean``/``std``: per-channel normalisation in [0, 1] pixel units (``x / 255``, then
    ``(x - mean) / std``), or None when the weights do not carry them (a reslab run
    normalises with its own training split's statistics; see ``preprocessing``).
    ``reported``: the accuracy the authors report, with ``reported_by`` saying where.
    """

    source: str
    origin: str
    license: str
    dataset: str
    preprocessing: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    reported: str = ""
    reported_by: str = ""
    notes: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("mean", "std"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelCard":
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("mean", "std"):
            if d.get(k) is not None:
                d[k] = tuple(float(x) for x in d[k])
        return cls(**d)

    def lines(self) -> list[str]:
        out = [f"source         {self.source}", f"origin         {self.origin}", f"license        {self.license}",
               f"dataset        {self.dataset}"]
        if self.reported:
            out.append(f"reported       {self.reported}" + (f" ({self.reported_by})" if self.reported_by else ""))
        if self.mean is not None:
            out.append(f"preprocessing  x/255, mean {list(self.mean)}, std {list(self.std)}")
        else:
            out.append(f"preprocessing  {self.preprocessing}")
        if self.notes:
            out.append(f"notes          {self.notes}")
        return out


SIZE_MARGIN, SIZE_SLACK = 1.25, 1 << 20
MAX_UNKNOWN_BYTES = 256 << 20  # a pinned file of no stated size: above ResNet-1202's 78 MB

# Tensor bytes per (shortcut, classes, depth): the state dict of the converted reslab model.
_TENSOR_BYTES = {
    ("A", 10): {20: 1084544, 32: 1865952, 44: 2647360, 56: 3428768, 110: 6945104, 1202: 78053232},
    ("B", 10): {20: 1096336, 32: 1877744, 44: 2659152, 56: 3440560},
    ("B", 100): {20: 1119736, 32: 1901144, 44: 2682552, 56: 3463960},
}


@dataclass(frozen=True)
class PinnedFile:
    """One published weight file: where it is and the hash it must have."""

    model: str        # reslab model name, e.g. "resnet56"
    url: str
    sha256: str       # 64 hex digits (full) or 8 (prefix from the file name)
    reported: str     # the authors' number, as they state it
    # Bytes of the tensors the file holds (the float32 state dict of the model it converts to,
    # computed from reslab's model: the files' exact sizes were not at hand).  Downloads are
    # capped at SIZE_MARGIN times this plus SIZE_SLACK for the pickle's framing.
    size: int | None = None

    @property
    def max_bytes(self) -> int:
        return int(self.size * SIZE_MARGIN) + SIZE_SLACK if self.size else MAX_UNKNOWN_BYTES

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def full_hash(self) -> bool:
        return len(self.sha256) == 64


@dataclass(frozen=True)
class Source:
    """A publisher of weights in one format, for one dataset."""

    name: str
    format: str                 # "akamaster" or "chenyaofo": the converter
    shortcut: str               # reslab's option reproducing the source's shortcut
    num_classes: int
    dataset: str                # reslab dataset name
    license: str
    repo: str
    commit: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mean_std_from: str
    reported_by: str
    files: dict[str, PinnedFile] = field(default_factory=dict)
    notes: str = ""

    def card(self, model: str) -> ModelCard:
        f = self.files[model]
        return ModelCard(source=self.name, origin=f.url, license=self.license, dataset=self.dataset,
                         preprocessing=f"x/255 then (x - mean) / std per channel ({self.mean_std_from})",
                         mean=self.mean, std=self.std, reported=f.reported, reported_by=self.reported_by,
                         notes=self.notes)


def _aka(depth: int, sha: str, err: str) -> PinnedFile:
    prefix = sha[:8]
    return PinnedFile(f"resnet{depth}", f"{AKAMASTER_REPO}/raw/master/pretrained_models/resnet{depth}-{prefix}.th",
                      sha, f"test error {err}% on CIFAR-10 (top-1 {100 - float(err):.2f}%)",
                      _TENSOR_BYTES["A", 10][depth])


def _chen(dataset: str, depth: int, prefix: str, top1: str) -> PinnedFile:
    return PinnedFile(f"resnet{depth}", f"{CHENYAOFO_REPO}/releases/download/resnet/{dataset}_resnet{depth}-{prefix}.pt",
                      prefix, f"top-1 accuracy {top1}% on {'CIFAR-10' if dataset == 'cifar10' else 'CIFAR-100'}",
                      _TENSOR_BYTES["B", 10 if dataset == "cifar10" else 100][depth])


_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

SOURCES: dict[str, Source] = {
    "akamaster": Source(
        name="akamaster", format="akamaster", shortcut="A", num_classes=10, dataset="cifar10",
        license="BSD-2-Clause (Copyright (c) 2018, Yerlan Idelbayev)", repo=AKAMASTER_REPO, commit=AKAMASTER_COMMIT,
        mean=_IMAGENET_MEAN, std=_IMAGENET_STD, mean_std_from="trainer.py's transforms.Normalize",
        reported_by=f"README.md of {AKAMASTER_REPO}, 'Test err(this impl.)'",
        notes="trained on all 50k training images (no validation split): its trainer.py evaluates on the "
              "CIFAR-10 *test* split and keeps the checkpoint with the best test accuracy, so the reported test "
              "errors are those of a checkpoint selected on the test set (optimistic); the accuracy stored in each "
              "file (best_prec1, e.g. 93.62% for resnet56) is that selection's and differs from the README figure "
              "quoted above (6.61% error = 93.39% for resnet56); option A shortcuts whose zero channels sit on both "
              "sides, imported by permuting channels (same function)",
        files={f.model: f for f in (
            _aka(20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", "8.27"),
            _aka(32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", "7.37"),
            _aka(44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", "6.90"),
            _aka(56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", "6.61"),
            _aka(110, "1d1ed7c2", "6.32"),
            _aka(1202, "f3b1deed", "6.18"),
        )}),
    "chenyaofo-cifar10": Source(
        name="chenyaofo-cifar10", format="chenyaofo", shortcut="B", num_classes=10, dataset="cifar10",
        license="BSD-3-Clause (Copyright (c) 2021, chenyaofo)", repo=CHENYAOFO_REPO, commit=CHENYAOFO_COMMIT,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
        mean_std_from="conf/cifar10.conf of chenyaofo/image-classification-codebase",
        reported_by=f"README.md of {CHENYAOFO_REPO}, Model Zoo, CIFAR-10",
        notes="option B shortcuts (1x1 conv + BN where the shape changes)",
        files={f.model: f for f in (
            _chen("cifar10", 20, "4118986f", "92.60"), _chen("cifar10", 32, "ef93fc4d", "93.53"),
            _chen("cifar10", 44, "2a3cabcb", "94.01"), _chen("cifar10", 56, "187c023a", "94.37"),
        )}),
    "chenyaofo-cifar100": Source(
        name="chenyaofo-cifar100", format="chenyaofo", shortcut="B", num_classes=100, dataset="cifar100",
        license="BSD-3-Clause (Copyright (c) 2021, chenyaofo)", repo=CHENYAOFO_REPO, commit=CHENYAOFO_COMMIT,
        mean=(0.507, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2761),
        mean_std_from="conf/cifar100.conf of chenyaofo/image-classification-codebase",
        reported_by=f"README.md of {CHENYAOFO_REPO}, Model Zoo, CIFAR-100",
        notes="option B shortcuts (1x1 conv + BN where the shape changes)",
        files={f.model: f for f in (
            _chen("cifar100", 20, "23dac2f1", "68.83"), _chen("cifar100", 32, "84213ce6", "70.16"),
            _chen("cifar100", 44, "ffe32858", "71.63"), _chen("cifar100", 56, "f2eff4c8", "72.63"),
        )}),
}

# create_model(name, pretrained=True) picks the first source that has the model.
DEFAULT_ORDER = ("akamaster", "chenyaofo-cifar10", "chenyaofo-cifar100")
SPEC = re.compile(r"^([a-z0-9-]+):([a-z0-9-]+)$")


def get_source(name: str) -> Source:
    key = str(name).strip().lower()
    if key == "chenyaofo":
        raise ReslabError("source 'chenyaofo' has two weight sets; name chenyaofo-cifar10 or chenyaofo-cifar100")
    if key not in SOURCES:
        raise ReslabError(f"unknown weight source {name!r}; valid: {', '.join(SOURCES)}")
    return SOURCES[key]


def get_pinned(source: str, model: str) -> tuple[Source, PinnedFile]:
    src = get_source(source)
    if model not in src.files:
        raise ReslabError(f"source {src.name} has no weights for {model!r}; it has: {', '.join(src.files)}")
    return src, src.files[model]


def sources_for(model: str) -> list[str]:
    """The sources that publish weights for ``model``, default first."""
    return [n for n in DEFAULT_ORDER if model in SOURCES[n].files]
