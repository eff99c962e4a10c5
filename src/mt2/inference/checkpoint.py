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

import dataclasses
import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file
from torch import nn

from mt2.frontend import COMPRESSIONS, DEFAULT_COMPRESSION, DEFAULT_OFFSET, MAX_OFFSET
from mt2.inference.calibration import Calibration
from mt2.model import ModelConfig, MT2Model

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Names that :func:`resolve` looks up in the package's ``weights/`` folder.
SHIPPED_MODELS = ("mt2", "contrastive", "equivariant", "masked", "mt2-tiny")
PICKLE_SUFFIXES = (".pt", ".ckpt", ".pth", ".pkl")
MODEL_PREFIX = "model."
PROBE_PREFIX = "mode_probe."
#: What ``config.json`` says about a stored mode probe.
MODE_PROBE_INFO = {
    "classes": ["major", "minor"],
    "input": "equivariant class token after the last block and final norm, averaged over windows, "
    "its 12 pitch-class axis rolled so that the estimated output bin is at 0 (Encoder.canonical_token)",
}


#: Dtypes a model folder may store its floating tensors in (:func:`write_checkpoint`).
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class CheckpointError(ValueError):
    """A model folder that cannot be loaded; the message names it and says what to do."""


def write_checkpoint(
    folder: str | os.PathLike, model: MT2Model, calibration: Calibration | None = None, mode_probe: nn.Linear | None = None,
    frontend: dict | None = None, training: dict | None = None, storage: str = "float32",
) -> Path:
    """Write a model folder (created if needed): ``model.safetensors`` + ``config.json``.

    ``frontend`` is ``{"compression", "offset"}`` of the model input (None: the frontend's
    defaults, :data:`~mt2.frontend.DEFAULT_COMPRESSION` and :data:`~mt2.frontend.DEFAULT_OFFSET`);
    ``training`` a free record. ``storage`` (:data:`STORAGE_DTYPES`) is the dtype of the stored
    floating tensors: ``float16`` halves the file (the shipped ``mt2-tiny``); reading casts back
    to the model's float32, so a folder reads the same either way (``training.weights_storage``
    says so when it is not float32).

    Both files are written under temporary names in the folder and flushed to disk before
    either is renamed over the old one, so a write that fails leaves the previous files whole.
    """
    if storage not in STORAGE_DTYPES:
        raise ValueError(f"storage={storage!r} is not one of {tuple(STORAGE_DTYPES)}")
    from mt2 import __version__  # deferred: mt2/__init__ imports this package

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {MODEL_PREFIX + name: value for name, value in model.state_dict().items()}
    if mode_probe is not None:
        tensors |= {PROBE_PREFIX + name: value for name, value in mode_probe.state_dict().items()}
    dtype = STORAGE_DTYPES[storage]
    stored = {name: (value.to(dtype) if value.is_floating_point() else value).detach().cpu().contiguous() for name, value in tensors.items()}
    config = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "frontend": {"compression": DEFAULT_COMPRESSION, "offset": DEFAULT_OFFSET} if frontend is None else dict(frontend),
        "calibration": None if calibration is None else calibration.to_dict(),
        "mode_probe": None if mode_probe is None else MODE_PROBE_INFO,
        "mt2_version": __version__,
        "training": {k: v for k, v in (training or {}).items() if k != "weights_storage"} | (
            {} if storage == "float32" else {"weights_storage": storage}),
    }
    text = json.dumps(config, indent=2) + "\n"
    _replace_files({
        folder / WEIGHTS_FILE: lambda path: save_file(stored, path, metadata={"format": "pt"}),
        folder / CONFIG_FILE: lambda path: path.write_text(text),
    })
    return folder


def _replace_files(writers: dict[Path, Callable[[Path], object]]) -> None:
    """Each ``write(temporary)`` into a temporary file beside its path, flushed to disk; only
    when every one is written are they renamed over their paths. If a write fails, the
    temporary files are removed and the old files stay as they were."""
    temporaries = {}
    try:
        for path, write in writers.items():
            temporaries[path] = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # created with the usual permissions
            write(temporaries[path])
            with temporaries[path].open("rb+") as stream:
                os.fsync(stream.fileno())
        for path, temporary in temporaries.items():
            os.replace(temporary, path)
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)


def read_checkpoint(folder: str | os.PathLike | Traversable) -> dict:
    """Read a folder written by :func:`write_checkpoint`: keyword arguments of ``Encoder``.

    Raises:
        CheckpointError: naming the file and the fault: no ``config.json`` (with the export
            command when the folder holds pickled checkpoints), a ``config.json`` that is not
            JSON, has another format, lacks a key or holds a value of the wrong type; a
            ``model.safetensors`` that is truncated, damaged or not safetensors at all (a
            pickle saved under that name is never unpickled); tensors that do not fit the config.
    """
    if isinstance(folder, (str, os.PathLike)):
        folder = Path(folder)
    config_file, weights_file = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_file.is_file():
        refuse_pickle(folder)
        raise CheckpointError(f"{folder}: not an mt2 model folder (no {CONFIG_FILE}); write one with Encoder.save_pretrained")
    if not weights_file.is_file():
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} is missing beside {CONFIG_FILE}")
    config = _read_config(config_file)
    try:
        model = MT2Model(ModelConfig.from_dict(config["model"]))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{config_file}: 'model' does not describe a model ({error}); re-export the model") from None
    tensors = _read_tensors(weights_file)
    unknown = sorted(n for n in tensors if not n.startswith((MODEL_PREFIX, PROBE_PREFIX)))
    if unknown:
        raise CheckpointError(f"{weights_file}: unexpected tensors {unknown[:5]}; it does not belong to an mt2 model folder")
    _load_state(model, tensors, MODEL_PREFIX, weights_file, config_file)
    mode_probe = None
    if config.get("mode_probe"):
        mode_probe = nn.Linear(model.layout.token_dim, len(MODE_PROBE_INFO["classes"]))
        _load_state(mode_probe, tensors, PROBE_PREFIX, weights_file, config_file)
    calibration = config.get("calibration")
    frontend = config["frontend"]
    return {
        "model": model,
        "calibration": None if calibration is None else Calibration.from_dict(calibration),
        "mode_probe": mode_probe,
        "compression": frontend["compression"],
        "offset": frontend["offset"],
        "training": config.get("training") or {},
    }


def _read_config(config_file: Path | Traversable) -> dict:
    """``config.json`` parsed and checked: every key present with a value of the right type."""
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_file}: not valid JSON ({error}); re-export the model or restore the file") from None

    def fault(message: str) -> CheckpointError:
        return CheckpointError(f"{config_file}: {message}; re-export the model or restore the file")

    if not isinstance(config, dict):
        raise fault(f"holds a {type(config).__name__}, not a JSON object")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{config_file}: format {config.get('format')!r} is not {FORMAT}; upgrade mt2 or re-export the model")
    for key, kind in (("model", dict), ("frontend", dict), ("calibration", (dict, type(None))), ("training", (dict, type(None)))):
        if key not in config and key != "training":
            raise fault(f"the key {key!r} is missing")
        if not isinstance(config.get(key), kind):
            raise fault(f"{key!r} is {config.get(key)!r}, not a JSON object")
    frontend = config["frontend"]
    checks = {"compression": lambda v: v in COMPRESSIONS, "offset": lambda v: _is_int(v) and 0 <= v <= MAX_OFFSET}
    for key, ok in checks.items():
        if key not in frontend:
            raise fault(f"the key 'frontend.{key}' is missing")
        if not ok(frontend[key]):
            raise fault(f"'frontend.{key}' is {frontend[key]!r}, not a valid value")
    _check_fields(config["model"], ModelConfig, "model", fault)
    if config["calibration"] is not None:
        _check_fields(config["calibration"], Calibration, "calibration", fault, required=("rotation", "direction"))
        calibration = config["calibration"]
        rotation, direction = calibration["rotation"], calibration["direction"]
        if not (_is_int(rotation) and 0 <= rotation < 12 and _is_int(direction) and direction in (1, -1)):
            raise fault(f"'calibration' needs a rotation in 0..11 and a direction of 1 or -1, got {calibration!r}")
    return config


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(data: dict, cls, name: str, fault, required: tuple[str, ...] | None = None) -> None:
    """Every field of dataclass ``cls`` in ``data`` (or only ``required``), each of its default's type.

    By hand: the core install has no schema library (neither pydantic nor jsonschema is a
    dependency), and the checks are JSON's (a bool is no int, an int is a float, a list a tuple)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise fault(f"unknown keys {[f'{name}.{k}' for k in unknown]} (known: {sorted(fields)})")
    for key, spec in fields.items():
        if key not in data:
            if required is None or key in required:
                raise fault(f"the key '{name}.{key}' is missing")
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else None
        value, expected = data[key], type(default)
        if default is None:
            ok = True
        elif expected is bool:
            ok = isinstance(value, bool)
        elif expected is int:
            ok = _is_int(value)
        elif expected is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif expected is tuple:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise fault(f"'{name}.{key}' is {value!r} ({type(value).__name__}), expected {expected.__name__}")


def _read_tensors(weights_file: Path | Traversable) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``; never unpickles."""
    data = weights_file.read_bytes()
    if data[:2] == b"PK" or data[:1] == b"\x80":
        raise CheckpointError(
            f"{weights_file}: a pickled file (torch.save) saved under the safetensors name, refused since unpickling "
            f"can run arbitrary code; export the checkpoint with `mt2 export CKPT OUT` or save with Encoder.save_pretrained"
        )
    try:
        return load_tensors(data)
    except Exception as error:  # safetensors raises its own SafetensorError (and others) on damaged files
        raise CheckpointError(
            f"{weights_file}: not a readable safetensors file ({type(error).__name__}: {error}; {len(data)} bytes): "
            "truncated or damaged; copy or re-export the model"
        ) from None


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, source: Traversable, config_file: Traversable) -> None:
    state = {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise CheckpointError(
            f"{source}: the tensors under {prefix!r} do not fit the model that {config_file} describes ({detail}); "
            "the two files come from different models: re-export the model"
        ) from None


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
    """The model folder for a shipped name (:data:`SHIPPED_MODELS`: ``mt2``, ``contrastive``, ``equivariant``, ``masked``, ``mt2-tiny``) or a path.

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
