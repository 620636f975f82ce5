"""``load_model``: weights from a run, a file or a published source, as a ready model.

Nothing here runs code from a file: ``.pt`` files go through
``torch.load(weights_only=True)`` and ``.safetensors`` files hold only tensors and strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from reslab.errors import ReslabError
from reslab.training.runpaths import RunPaths
from reslab.weights.check import build_checked, header_of
from reslab.weights.files import foreign_hint, load_state_file, read_safetensors, safetensors_header  # noqa: F401
from reslab.weights.sources import SPEC, ModelCard, get_pinned

FORMAT_KEY = "reslab_weights"  # safetensors metadata of converted weights: "1", plus "arch" and "card"


@dataclass
class LoadedModel:
    """What :func:`load_model` returns.

    ``model``
        the network, in eval mode, on the CPU.  It expects *normalised* images: see ``card``
        and :meth:`preprocess`.
    ``config``
        the run's :class:`~reslab.training.TrainConfig` for weights trained by reslab;
        ``None`` for imported weights (they were not trained by reslab).
    ``card``
        :class:`~reslab.weights.ModelCard`: source, license, dataset, reported accuracy and
        the preprocessing the weights expect.
    ``arch``
        the :func:`~reslab.create_model` arguments that rebuild the network
        (``{"model": "resnet56", "num_classes": 10, "in_channels": 3, "shortcut": "A", ...}``).
    ``path``, ``iteration``
        the file read, and the training iteration it was saved at (reslab checkpoints).

    It unpacks as ``model, config = reslab.load_model(...)``.
    """

    model: nn.Module
    config: Any
    card: ModelCard
    arch: dict = field(default_factory=dict)
    path: Path | None = None
    iteration: int | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.config))

    def preprocess(self, images, mean=None, std=None) -> torch.Tensor:
        """``images`` (uint8 0..255, or float in [0, 1]; (C, H, W) or (N, C, H, W)) scaled
        and normalised the way these weights expect.  Weights trained by reslab do not
        store their normalisation (the training split's statistics): pass ``mean``/``std``."""
        mean = self.card.mean if mean is None else tuple(mean)
        std = self.card.std if std is None else tuple(std)
        if mean is None or std is None:
            raise ReslabError(f"these weights do not carry their normalisation: {self.card.preprocessing}; "
                              f"pass mean= and std=")
        x = torch.as_tensor(images)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif x.is_floating_point():
            x = x.float()
        else:
            raise ReslabError(f"images must be uint8 or float, got {x.dtype}")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != len(mean):
            raise ReslabError(f"images must be (N, {len(mean)}, H, W), got {tuple(x.shape)}")
        m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - m) / s


# --------------------------------------------------------------------------- reslab runs


def _arch_from_config(cfg, found: dict, path: Path) -> dict:
    """The create_model arguments of a run's weights: its config, and the head's and stem's
    shapes in the file's header (a run may have trained on any number of classes/channels)."""
    from reslab.models.registry import spec

    s = spec(cfg.model)
    for key in ("stem.conv.weight", "head.fc.weight"):
        if key not in found or len(found[key][0]) < 2:
            raise ReslabError(f"{path}: the weights lack {key}; they are not a {cfg.model} saved by reslab")
    arch = {"model": cfg.model, "num_classes": int(found["head.fc.weight"][0][0]),
            "in_channels": int(found["stem.conv.weight"][0][1]), "width": cfg.width}
    if s.residual:  # a plain net has no shortcut option to record
        arch["shortcut"] = cfg.shortcut
    return arch


def _run_card(cfg, path: Path) -> ModelCard:
    pad = f", zero-padded to {cfg.pad_to}x{cfg.pad_to}" if cfg.pad_to else ""
    return ModelCard(source="reslab", origin=str(path), license="not stated (weights trained with reslab)",
                     dataset=cfg.dataset,
                     preprocessing=("x/255, then (x - mean) / std per channel with the mean/std of the run's own "
                                    f"training split (reslab.data.channel_stats){pad}; not stored with the "
                                    "weights, `reslab eval` recomputes them from the dataset"))


def _from_run_state(cfg_dict: dict, found: dict, read_state, path: Path, iteration=None) -> LoadedModel:
    from reslab.training.config import from_dict

    if not isinstance(cfg_dict, dict):
        raise ReslabError(f"{path}: its config is not a dict of config keys")
    try:
        cfg = from_dict(cfg_dict)
    except ReslabError as err:
        raise ReslabError(f"{path}: its config is not valid: {err}") from None
    except (TypeError, AttributeError) as err:
        raise ReslabError(f"{path}: its config is not valid ({err})") from None
    arch = _arch_from_config(cfg, found, path)
    return LoadedModel(build_checked(arch, found, read_state, path), cfg, _run_card(cfg, path), arch, path, iteration)


# --------------------------------------------------------------------------- files


def _card(d, path: Path) -> ModelCard:
    try:
        return ModelCard.from_dict(d)
    except (TypeError, ValueError, AttributeError):
        raise ReslabError(f"{path}: its 'card' metadata is not a model card") from None


def _json(meta: dict, key: str, path: Path):
    try:
        return json.loads(meta[key])
    except RecursionError:
        raise ReslabError(f"{path}: its '{key}' metadata is nested too deeply") from None
    except (ValueError, TypeError) as err:
        raise ReslabError(f"{path}: its '{key}' metadata is not valid JSON ({err})") from None


def _load_safetensors(path: Path) -> LoadedModel:
    found, meta = safetensors_header(path)

    def read_state():
        return read_safetensors(path)[0]

    if "config" in meta:  # written by the trainer: the resolved TrainConfig as JSON
        return _from_run_state(_json(meta, "config", path), found, read_state, path)
    if FORMAT_KEY in meta:  # converted by `reslab weights import`
        arch, card = _json(meta, "arch", path), _card(_json(meta, "card", path), path)
        return LoadedModel(build_checked(arch, found, read_state, path), None, card, arch, path)
    cfg_file = RunPaths(path.parent).config
    if cfg_file.is_file():  # a run's model.safetensors without metadata: the run's config.json
        try:
            cfg_dict = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as err:
            raise ReslabError(f"{cfg_file}: not a readable config ({err})") from None
        return _from_run_state(cfg_dict, found, read_state, path)
    raise ReslabError(f"{path}: no reslab metadata and no config.json beside it; cannot tell which model it holds")


def _load_checkpoint(path: Path) -> LoadedModel:
    from reslab.weights.convert import torch_load_safe

    obj = torch_load_safe(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("model"), dict) and isinstance(obj.get("config"), dict)):
        raise ReslabError(f"{path}: not a reslab checkpoint (no 'model' and 'config' entries){foreign_hint(obj)}")
    state = obj["model"]
    bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ReslabError(f"{path}: its model entry {str(bad)[:80]!r} is not a tensor")
    it = obj.get("iteration")
    return _from_run_state(obj["config"], header_of(state), lambda: state, path,
                           int(it) if isinstance(it, int) else None)


def run_weights(run_dir: Path) -> Path:
    """A run directory's weights: ``checkpoints/best.pt`` (best by validation error), else
    ``checkpoints/latest.pt``, else ``model.safetensors``."""
    paths = RunPaths(run_dir)
    for found in (paths.best, paths.latest, paths.weights):
        if found.is_file():
            return found
    raise ReslabError(f"{run_dir}: no checkpoints/best.pt, checkpoints/latest.pt or model.safetensors; "
                      "is it a reslab run directory?")


def load_model(source: str | Path) -> LoadedModel:
    """Load weights without running code from the file, as a model in eval mode.

    ``source`` is one of:

    * a run directory (``checkpoints/best.pt``, else ``latest.pt``, else ``model.safetensors``);
    * a ``.pt`` checkpoint written by reslab (``torch.load(weights_only=True)``);
    * a ``.safetensors`` file: the trainer's ``model.safetensors`` (its metadata holds the
      run's config; without it, ``config.json`` in the same folder is read) or one written
      by ``reslab weights import`` (its metadata holds the architecture and model card);
    * ``SOURCE:MODEL``, e.g. ``akamaster:resnet56``: published weights (see
      ``reslab weights list``), downloaded to the user cache and checked on first use.

    Returns a :class:`LoadedModel` (``model, config = load_model(...)`` also works).
    """
    text = str(source)
    p = Path(source).expanduser()
    if not p.exists():
        m = SPEC.match(text)
        if m:
            return pretrained(m[1], m[2])
    if p.is_dir():
        p = run_weights(p)
    elif not p.is_file():
        raise ReslabError(f"{text}: no such run directory or weights file (or SOURCE:MODEL, see `reslab weights list`)")
    if p.suffix == ".safetensors":
        return _load_safetensors(p)
    return _load_checkpoint(p)


# --------------------------------------------------------------------------- published weights


def imported_arch(source: str, model: str) -> dict:
    src, _ = get_pinned(source, model)
    return {"model": model, "num_classes": src.num_classes, "in_channels": 3, "shortcut": src.shortcut}


def pretrained(source: str, model: str, *, file: str | Path | None = None, log=None) -> LoadedModel:
    """Published weights ``source``/``model`` as a reslab model (eval mode) with its card.

    The converted file in the user cache (``~/.cache/reslab/weights/SOURCE/MODEL.safetensors``,
    what ``reslab weights import`` writes) is canonical: when present it is loaded (checked
    like any weights file).  Otherwise the original comes from ``file`` or a download, is
    checked against its pinned hash, converted and written there; a downloaded original is
    then removed, so the cache holds one file per model."""
    from reslab.weights.convert import convert_file
    from reslab.weights.download import converted_path, fetch_pinned, verify_file

    src, pf = get_pinned(source, model)
    cached = converted_path(src.name, model)
    if file is None and cached.is_file():
        loaded = _load_safetensors(cached)
        if loaded.card.source != src.name or loaded.arch.get("model") != model:
            raise ReslabError(f"{cached}: holds {loaded.card.source}:{loaded.arch.get('model')}, not "
                              f"{src.name}:{model}; delete it and run `reslab weights import {src.name} {model}`")
        return loaded
    if file is not None:
        path = Path(file).expanduser()
        verify_file(path, pf)
    else:
        path = fetch_pinned(src.name, model, log=log)
    try:
        net = convert_file(src, model, path)
    except ReslabError:
        if file is None:
            path.unlink(missing_ok=True)  # the right hash, yet not convertible: no use to anyone in the cache
        raise
    loaded = LoadedModel(net, None, src.card(model), imported_arch(src.name, model), cached)
    save_converted(loaded, cached)
    if file is None:
        path.unlink(missing_ok=True)  # the converted file stands for it from now on
    return loaded


def save_converted(loaded: LoadedModel, out: str | Path) -> Path:
    """Write ``loaded`` as safetensors whose metadata holds its ``arch`` and ``card``
    (atomic: a temporary file renamed into place)."""
    from reslab.training.checkpoint import export_safetensors

    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReslabError(f"cannot create {out.parent}: {err.strerror or err}") from None
    meta = {FORMAT_KEY: "1", "arch": json.dumps(loaded.arch), "card": json.dumps(loaded.card.to_dict())}
    return export_safetensors(loaded.model, out, metadata=meta)


def import_weights(source: str, model: str, *, file: str | Path | None = None, out: str | Path | None = None,
                   log=None) -> Path:
    """Fetch (or take ``file``), verify, convert and write ``source``/``model`` as a reslab
    safetensors file (default ``~/.cache/reslab/weights/SOURCE/MODEL.safetensors``)."""
    loaded = pretrained(source, model, file=file, log=log)  # also fills the cache
    if out is None or Path(out).resolve() == loaded.path.resolve():
        return loaded.path
    return save_converted(loaded, out)
