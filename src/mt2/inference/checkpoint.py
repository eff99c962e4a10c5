"""Encoder folders on disk: safetensors weights and a JSON config; pickle is never read.

A folder holds two files:

* ``model.safetensors``: the network's tensors under ``model.`` and, when the encoder has
  one, the major/minor probe's under ``mode_probe.`` (weights only, no code);
* ``config.json``: ``{"format": 1, "model": ModelConfig dict, "frontend": {"compression",
  "offset"}, "calibration": Calibration dict or null, "mode_probe": description or null,
  "mt2_version", "training": free dict}``.

Pickled checkpoints (``.pt``, ``.ckpt``, ``.pth``, ``.pkl``) can run arbitrary code when
loaded, so they are refused with the command that exports them (``mt2 export CKPT OUT``);
no code path here calls ``torch.load`` or ``pickle``.

Shipped models live in ``mt2/weights/<name>/`` inside the package and are read through
:mod:`importlib.resources`, so they load from any installation.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file
from torch import nn

from mt2.inference.calibration import Calibration
from mt2.model import ModelConfig, MT2Model

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from mt2.inference.encoder import Encoder

FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Names that :func:`resolve` looks up in the package's ``weights/`` folder.
SHIPPED_MODELS = ("mt2", "contrastive", "equivariant", "masked")
PICKLE_SUFFIXES = (".pt", ".ckpt", ".pth", ".pkl")
MODEL_PREFIX = "model."
PROBE_PREFIX = "mode_probe."
#: What ``config.json`` says about a stored mode probe.
MODE_PROBE_INFO = {
    "classes": ["major", "minor"],
    "input": "equivariant class token after the last block and final norm, averaged over windows, "
    "its 12 pitch-class axis rolled so that the estimated output bin is at 0 (Encoder.canonical_token)",
}


class CheckpointError(ValueError):
    """A model folder that cannot be loaded; the message names it and says what to do."""


def write_checkpoint(encoder: "Encoder", folder: str | os.PathLike) -> Path:
    """Write ``encoder`` to ``folder`` (created if needed) as ``model.safetensors`` + ``config.json``."""
    from mt2 import __version__  # deferred: mt2/__init__ imports this package

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {MODEL_PREFIX + name: value for name, value in encoder.model.state_dict().items()}
    if encoder.mode_probe is not None:
        tensors |= {PROBE_PREFIX + name: value for name, value in encoder.mode_probe.state_dict().items()}
    save_file({name: value.detach().cpu().contiguous() for name, value in tensors.items()}, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    config = {
        "format": FORMAT,
        "model": encoder.model.config.to_dict(),
        "frontend": {"compression": encoder.compression, "offset": encoder.offset},
        "calibration": None if encoder.calibration is None else encoder.calibration.to_dict(),
        "mode_probe": None if encoder.mode_probe is None else MODE_PROBE_INFO,
        "mt2_version": __version__,
        "training": encoder.training_info,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read_checkpoint(folder: str | os.PathLike | Traversable) -> dict:
    """Read a folder written by :func:`write_checkpoint`: keyword arguments of ``Encoder``.

    Raises:
        CheckpointError: no ``config.json`` (with the export command when the folder holds
            pickled checkpoints), an unknown format, or tensors that do not fit the config.
    """
    if isinstance(folder, (str, os.PathLike)):
        folder = Path(folder)
    config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_file.is_file():
        refuse_pickle(folder)
        raise CheckpointError(f"{folder}: not an mt2 model folder (no {CONFIG_FILE}); write one with Encoder.save_pretrained")
    if not weights_file.is_file():
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} is missing beside {CONFIG_FILE}")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file}: not valid JSON ({error})") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{config_file}: format {config.get('format')!r} is not {FORMAT}; upgrade mt2 or re-export the model")

    model = MT2Model(ModelConfig.from_dict(config["model"]))
    tensors = load_tensors(weights_file.read_bytes())
    unknown = sorted(n for n in tensors if not n.startswith((MODEL_PREFIX, PROBE_PREFIX)))
    if unknown:
        raise CheckpointError(f"{weights_file}: unexpected tensors {unknown[:5]}")
    _load_state(model, tensors, MODEL_PREFIX, weights_file)
    mode_probe = None
    if config.get("mode_probe"):
        mode_probe = nn.Linear(model.config.token_dim, len(MODE_PROBE_INFO["classes"]))
        _load_state(mode_probe, tensors, PROBE_PREFIX, weights_file)
    calibration = config.get("calibration")
    frontend = config["frontend"]
    return {
        "model": model,
        "calibration": None if calibration is None else Calibration.from_dict(calibration),
        "mode_probe": mode_probe,
        "compression": frontend["compression"],
        "offset": int(frontend["offset"]),
        "training": config.get("training") or {},
    }


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Traversable) -> None:
    state = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: the tensors under {prefix!r} do not fit the config ({error})") from None


def refuse_pickle(path: Path | Traversable) -> None:
    """Raise :class:`CheckpointError` if ``path`` is a pickled checkpoint or a folder holding one."""
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = [child for child in path.iterdir() if child.is_file()]
    else:
        return
    pickled = [p for p in candidates if os.path.splitext(p.name)[1].lower() in PICKLE_SUFFIXES]
    if pickled:
        raise CheckpointError(
            f"{pickled[0]}: refusing to load a pickled checkpoint, since unpickling can run arbitrary code. "
            f"Export it once with `mt2 export {pickled[0]} OUT` and load the folder OUT "
            f"({WEIGHTS_FILE} + {CONFIG_FILE})"
        )


def shipped_models() -> list[str]:
    """Names of the models shipped inside this installation (a subset of :data:`SHIPPED_MODELS`)."""
    root = resources.files("mt2") / "weights"
    return [name for name in SHIPPED_MODELS if (root / name / CONFIG_FILE).is_file()]


def resolve(name_or_path: str | os.PathLike) -> Path | Traversable:
    """The model folder for a shipped name (``mt2``, ``contrastive``, ``equivariant``, ``masked``) or a path.

    An existing path wins over a shipped name. A path to ``config.json`` or
    ``model.safetensors`` stands for its folder.

    Raises:
        CheckpointError: a pickled checkpoint, or a shipped name that this installation lacks.
        FileNotFoundError: neither an existing path nor a shipped name.
    """
    path = Path(name_or_path)
    if path.exists():
        refuse_pickle(path)
        if path.is_file() and path.name in (CONFIG_FILE, WEIGHTS_FILE):
            return path.parent
        if path.is_file():
            raise CheckpointError(f"{path}: expected a model folder holding {WEIGHTS_FILE} and {CONFIG_FILE}")
        return path
    name = str(name_or_path)
    available = shipped_models()
    listing = ", ".join(available) if available else "none in this installation"
    if name in SHIPPED_MODELS:
        if name not in available:
            raise CheckpointError(
                f"the shipped model {name!r} is not in this installation (shipped models: {listing}); "
                "pass the folder of a saved model instead"
            )
        return resources.files("mt2") / "weights" / name
    raise FileNotFoundError(f"{name}: no such model folder, and not a shipped model name (shipped models: {listing})")
