"""One frozen dataclass per training run.

Layers, later ones winning: the dataclass defaults → the recipe (``he2016`` or
``quick``) → a TOML/JSON config file → ``--set key=value`` flags.  The resolved config is
checked once, written to ``RUN_DIR/config.json`` and into every checkpoint, so a run can
be repeated from its directory alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from reslab.errors import ReslabError

SCHEDULES = ("step", "onecycle", "cosine", "constant")
AMP_CHOICES = ("auto", "bf16", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Sanity ceilings: far beyond any real run, low enough that a typo fails at once instead of
# allocating for minutes.  The paper's deepest net is ResNet-1202 (depth cap: twice that); its
# widths are multiplier 1 (cap 16: 1,024 filters in the last CIFAR stage).
MAX_DEPTH = 2 * 1202
MAX_WIDTH = 16.0
MAX_ITERATIONS = 10 ** 9
MAX_BATCH = 1 << 20
MAX_CONFIG_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class TrainConfig:
    # what to train
    model: str = "resnet20"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    shortcut: str = "A"                 # §4.2 option A/B/C (residual nets only)
    width: float = 1.0                  # multiplier of the paper's 16/32/64 filters
    zero_init_residual: bool = False
    init: str = "he_normal"
    # data
    val_size: int | None = None         # images held out of train; None: the dataset's default (5k)
    train_subset: int | None = None     # use only this many training images (demos, tests)
    test_subset: int | None = None      # evaluate test error on the first N test images only
    augment: bool = True                # §4.2: 4-pixel pad + random crop, random horizontal flip
    pad_to: int | None = None           # zero-pad smaller images to this size (e.g. 28 -> 32)
    # optimisation (§4.2: SGD, momentum 0.9, weight decay 1e-4, batch 128)
    batch_size: int = 128               # global batch, images per iteration over all ranks
    accum_steps: int = 1                # micro-batches per iteration (batch_size must divide)
    lr: float = 0.1                     # peak lr, per batch_size images (not rescaled)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "step"              # step | onecycle | cosine | constant
    iterations: int = 64_000            # iterations, not epochs
    milestones: tuple[int, ...] = (32_000, 48_000)  # iterations where lr is divided by 10
    warmup_lr: float | None = None      # §4.2, 110 layers: lr 0.01 until train error < 80%
    warmup_until_error: float = 0.8
    warmup_window: int = 20             # iterations averaged for the warm-up's train error
    onecycle_pct: float = 0.25          # share of iterations spent rising to lr (onecycle)
    # evaluation and logging
    eval_every: int = 1000              # iterations between validation passes (0: only at the end)
    log_every: int = 50                 # iterations between metrics.jsonl lines
    eval_test: bool = False             # also log test error (labelled as test; never used to select)
    ckpt_every: int = 1000              # iterations between latest-checkpoint writes
    probe_every: int = 0                # iterations between per-module gradient norms in metrics.jsonl (0: off)
    # numerics and speed
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    amp: str = "auto"                   # auto: bf16 autocast where the hardware supports it
    channels_last: bool = True
    compile: bool = False
    compile_mode: str = "default"       # torch.compile mode; "reduce-overhead" adds CUDA graphs
    deterministic: bool = False         # torch.use_deterministic_algorithms (slower on CUDA)
    sync_bn: bool = False               # SyncBatchNorm under DDP (CUDA only)
    recipe: str = "custom"

    def __post_init__(self):
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d


def _depth_of(model: str) -> int | None:
    """The model's depth from its spec; None for a name that is not a model (validation says why)."""
    from reslab.models.registry import spec

    try:
        return spec(model).depth
    except ReslabError:
        return None


def recipe(name: str, model: str = "resnet20") -> dict[str, Any]:
    """The overrides a recipe applies on top of the defaults."""
    if name == "he2016":
        # He et al. §4.2, exactly: lr 0.1 /10 at 32k and 48k, stop at 64k, batch 128, 45k/5k split.
        over: dict[str, Any] = dict(recipe="he2016", batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4,
                                    schedule="step", iterations=64_000, milestones=(32_000, 48_000),
                                    augment=True, val_size=5000, eval_every=1000, ckpt_every=1000)
        depth = _depth_of(model)
        if depth is not None and depth >= 110:
            over["warmup_lr"] = 0.01  # §4.2: 0.01 until train error < 80% (~400 iterations), then 0.1
        return over
    if name == "quick":
        # A CPU demo: a few epochs of Fashion-MNIST-sized data with a one-cycle schedule.
        return dict(recipe="quick", batch_size=128, lr=0.1, schedule="onecycle", iterations=1500,
                    eval_every=500, log_every=25, ckpt_every=250, milestones=())
    raise ReslabError(f"unknown recipe {name!r}; valid: he2016, quick")


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """Turn a string (or JSON/TOML value) into the field's type, or fail with one line."""
    if key not in _FIELDS:
        raise ReslabError(f"unknown config key {key!r}; valid: {', '.join(_FIELDS)}")
    default = _FIELDS[key].default
    kind = str(_FIELDS[key].type)
    try:
        if (value is None or isinstance(value, str) and value.lower() in ("none", "null")) and "None" in kind:
            return None
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).replace("_", "")) if isinstance(value, str) else int(value)
        if kind.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            out = float(value)
            if not math.isfinite(out):
                raise ValueError
            return out
        if kind.startswith("tuple"):
            items = value if isinstance(value, (list, tuple)) else [v for v in str(value).replace(",", " ").split()]
            return tuple(int(str(v).replace("_", "")) for v in items)
        if kind.startswith("str"):
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        return value
    raise ReslabError(f"config key {key!r}: {_short(value)} is not a valid {kind} (default: {default!r})")


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to one short line (a hostile value may be huge or deeply nested)."""
    try:
        text = repr(value) if not isinstance(value, (list, dict, tuple)) else f"a {type(value).__name__}"
    except (RecursionError, ValueError):
        text = f"a {type(value).__name__}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(cfg: TrainConfig) -> None:
    from reslab.models.init import INIT_SCHEMES

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ReslabError(msg)

    _check_model(cfg.model)
    from reslab.data.registry import get_info

    get_info(cfg.dataset)  # an unknown dataset: its one-line error now, not after the run directory is set up
    need(isinstance(cfg.width, (int, float)) and math.isfinite(cfg.width) and 0 < cfg.width <= MAX_WIDTH,
         f"width must be a multiplier in (0, {MAX_WIDTH:g}] of the paper's filter counts, got {cfg.width}")
    need(0 <= cfg.seed < 2 ** 32, f"seed must be in 0..2**32-1, got {_short(cfg.seed)}")
    need(1 <= cfg.batch_size <= MAX_BATCH, f"batch_size must be in 1..{MAX_BATCH}, got {_short(cfg.batch_size)}")
    need(cfg.iterations <= MAX_ITERATIONS, f"iterations must be <= {MAX_ITERATIONS}, got {_short(cfg.iterations)}")
    for key in ("lr", "momentum", "weight_decay", "warmup_until_error", "onecycle_pct"):
        need(math.isfinite(getattr(cfg, key)), f"{key} must be a finite number, got {getattr(cfg, key)}")
    need(cfg.accum_steps >= 1 and cfg.batch_size % cfg.accum_steps == 0,
         f"accum_steps must be >= 1 and divide batch_size {cfg.batch_size}, got {cfg.accum_steps}")
    need(cfg.lr > 0, f"lr must be > 0, got {cfg.lr}")
    need(0 <= cfg.momentum < 1, f"momentum must be in [0, 1), got {cfg.momentum}")
    need(cfg.weight_decay >= 0, f"weight_decay must be >= 0, got {cfg.weight_decay}")
    need(cfg.iterations >= 1, f"iterations must be >= 1, got {cfg.iterations}")
    need(cfg.schedule in SCHEDULES, f"schedule {cfg.schedule!r} is not valid; valid: {', '.join(SCHEDULES)}")
    need(cfg.compile_mode in COMPILE_MODES,
         f"compile_mode {cfg.compile_mode!r} is not valid; valid: {', '.join(COMPILE_MODES)}")
    # CUDA graphs replay into the same output memory: gradients of micro-batch k+1 would
    # overwrite those of micro-batch k before they are accumulated (pytorch#169545).
    need(not (cfg.compile and cfg.compile_mode in ("reduce-overhead", "max-autotune") and cfg.accum_steps > 1),
         f"compile_mode {cfg.compile_mode!r} uses CUDA graphs, which cannot accumulate gradients over "
         f"accum_steps={cfg.accum_steps}; use compile_mode default or max-autotune-no-cudagraphs, or accum_steps 1")
    need(cfg.amp in AMP_CHOICES, f"amp {cfg.amp!r} is not valid; valid: {', '.join(AMP_CHOICES)}")
    need(cfg.init in INIT_SCHEMES, f"init {cfg.init!r} is not valid; valid: {', '.join(INIT_SCHEMES)}")
    need(cfg.shortcut in ("A", "B", "C"), f"shortcut {cfg.shortcut!r} is not valid; valid: A, B, C")
    need(list(cfg.milestones) == sorted(cfg.milestones) and all(m > 0 for m in cfg.milestones),
         f"milestones must be increasing positive iterations, got {list(cfg.milestones)}")
    need(cfg.warmup_lr is None or cfg.warmup_lr > 0, f"warmup_lr must be > 0, got {cfg.warmup_lr}")
    need(cfg.warmup_window >= 1, f"warmup_window must be >= 1 iteration, got {cfg.warmup_window}")
    need(0 < cfg.warmup_until_error <= 1, f"warmup_until_error must be in (0, 1], got {cfg.warmup_until_error}")
    need(0 < cfg.onecycle_pct < 1, f"onecycle_pct must be in (0, 1), got {cfg.onecycle_pct}")
    for key in ("eval_every", "log_every", "ckpt_every", "probe_every"):
        need(getattr(cfg, key) >= 0, f"{key} must be >= 0, got {getattr(cfg, key)}")
    need(cfg.val_size is None or cfg.val_size >= 0, f"val_size must be >= 0, got {cfg.val_size}")
    from reslab.data.loader import check_pad_to

    check_pad_to(cfg.pad_to)  # before the run directory is touched, not when the loader pads
    need(cfg.train_subset is None or cfg.train_subset >= 1, f"train_subset must be >= 1, got {cfg.train_subset}")
    need(cfg.test_subset is None or cfg.test_subset >= 1, f"test_subset must be >= 1, got {cfg.test_subset}")
    need(cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"),
         f"device {cfg.device!r} is not valid; valid: auto, cpu, cuda, cuda:N")


def _check_model(name: str) -> None:
    """A ResNet or plain net that exists, of at most MAX_DEPTH layers; decided from the name
    alone, before anything is built."""
    from reslab.models.registry import spec

    s = spec(str(name))  # an unknown name, a CIFAR depth that is not 6n+2: its one-line error
    if s.depth > MAX_DEPTH:
        raise ReslabError(f"model {_short(name)}: deeper than the limit of {MAX_DEPTH} layers "
                          f"(twice the paper's deepest, ResNet-1202)")
    if s.family == "mlp":
        raise ReslabError(f"model {name!r} is the scalar net of the shattered-gradients experiment (1-D inputs), "
                          "not an image classifier; train a ResNet or plain net (resnet20, plain56, cifar-resnetN, ...)")


def load_file(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON file holding one table/object of config keys; anything else is one line."""
    p = Path(path)
    if not p.is_file():
        raise ReslabError(f"--config {p}: no such file")
    if p.suffix not in (".toml", ".json"):
        raise ReslabError(f"--config {p}: unknown format {p.suffix!r}; valid: .toml, .json")
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as err:
        raise ReslabError(f"--config {p}: cannot read ({err.strerror or err})") from None
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise ReslabError(f"--config {p}: larger than {MAX_CONFIG_FILE_BYTES} bytes; not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReslabError(f"--config {p}: not a UTF-8 text file") from None
    try:
        values = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except RecursionError:
        raise ReslabError(f"--config {p}: cannot parse: nested too deeply") from None
    except (ValueError, TypeError) as err:  # incl. TOMLDecodeError, JSONDecodeError, int digit limits
        lines = str(err).splitlines() or [type(err).__name__]
        raise ReslabError(f"--config {p}: cannot parse: {lines[0][:160]}") from None
    if not isinstance(values, dict):
        raise ReslabError(f"--config {p}: must hold a table of config keys, got a {type(values).__name__}")
    return values


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ReslabError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def resolve(*, recipe_name: str | None = None, file: str | Path | None = None,
            overrides: dict[str, Any] | None = None) -> TrainConfig:
    """defaults → recipe → file → overrides, coerced and validated once."""
    file_values = load_file(file) if file else {}
    overrides = overrides or {}
    layered: dict[str, Any] = {}
    model = overrides.get("model") or file_values.get("model") or TrainConfig.model
    if recipe_name:
        layered.update(recipe(recipe_name, str(model)))
    for source in (file_values, overrides):
        for k, v in source.items():
            layered[k] = _coerce(k, v)
    return TrainConfig(**layered)


def from_dict(d: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved by :meth:`TrainConfig.to_dict`."""
    return TrainConfig(**{k: _coerce(k, v) for k, v in d.items()})
