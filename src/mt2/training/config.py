"""The configuration of a pretraining run: every hyper-parameter, read from YAML.

One config type serves every trainer (``mt2 pretrain``, the recipe study, ``mt2 perf``).
The model's shape is the named preset's (:data:`mt2.model.PRESETS`); the packaged files
``mt2/configs/<preset>.yaml`` hold the run's defaults (views, optimiser, schedule, run
length) and no model overrides, so the preset is the one place of the recipe's shape. A
user file given with ``--config`` overlays them, command-line flags overlay both, and a
recipe-study configuration is a named overlay (:data:`mt2.study.OVERLAYS`); every layer
merges ``model`` and ``views`` key by key (:func:`overlay`). The resolved configuration is
saved as ``config.yaml`` beside the checkpoints, with the package version and the data
hash (:func:`save_config`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from mt2.model import ModelConfig, make_config
from mt2.data.views import ViewConfig
from mt2.losses.ntxent import DEFAULT_TEMPERATURE
from mt2.training.objective import CONTRASTIVE_PAIRS, DEFAULT_CONTRASTIVE_PAIR

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
#: Learning-rate schedules (:func:`mt2.training.step.lr_factor`).
SCHEDULES = ("cosine", "wsd")
#: Keys whose mappings are merged key by key when configurations are layered.
MERGED_KEYS = ("model", "views")


@dataclass
class PretrainConfig:
    """Hyper-parameters of a run; the comments of ``mt2/configs/mt2-mini.yaml`` explain each.

    The defaults are the packaged recipe, ``load_config("mt2-mini")``, field by field (tested).
    """

    preset: str = "mt2-mini"
    variant: str = "mt2"
    model: dict = field(default_factory=dict)
    views: dict = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    warmup: int = 50
    schedule: str = "cosine"
    decay_fraction: float = 0.1
    budgets: tuple[int, ...] = ()
    grad_clip: float = 1.0
    temperature: float = DEFAULT_TEMPERATURE
    balance_weight: float = 0.0
    contrastive_pair: str = DEFAULT_CONTRASTIVE_PAIR
    batch_size: int = 32
    max_steps: int = 1500
    seed: int = 0
    num_workers: int = 0
    precision: str = "auto"
    max_nonfinite: int = 20
    probe_every: int = 500
    probe_calibration: bool = False
    checkpoint_every: int = 100
    log_every: int = 10
    real_data: str | None = None
    real_share: float = 0.5

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        self.budgets = tuple(sorted(int(b) for b in self.budgets))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not one of {SCHEDULES}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction={self.decay_fraction} must lie in (0, 1] (the share of the steps that decay)")
        if self.budgets and self.schedule != "wsd":
            raise ValueError(f"budgets={list(self.budgets)} need schedule: wsd (a cosine run cannot branch off a finished "
                             "model at a smaller budget)")
        if any(b < 1 or b > self.max_steps for b in self.budgets):
            raise ValueError(f"budgets={list(self.budgets)} must lie in [1, max_steps={self.max_steps}]")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {PRECISIONS}")
        if self.contrastive_pair not in CONTRASTIVE_PAIRS:
            raise ValueError(f"contrastive_pair={self.contrastive_pair!r} is not one of {CONTRASTIVE_PAIRS}")
        if not 0 < self.real_share <= 1:
            raise ValueError(f"real_share={self.real_share} must lie in (0, 1] (the share of each batch cut from real_data)")
        for name in ("batch_size", "max_steps", "max_nonfinite", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        self.model_config()  # validates preset, variant and model overrides
        self.view_config()

    def model_config(self) -> ModelConfig:
        return make_config(self.preset, self.variant, **self.model)

    def view_config(self) -> ViewConfig:
        return ViewConfig(**self.views)

    def overlaid(self, overrides: dict) -> "PretrainConfig":
        """A new configuration: this one with ``overrides`` laid over it (:func:`overlay`)."""
        return PretrainConfig.from_dict(overlay(self.to_dict(), overrides))

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        data["budgets"] = list(self.budgets)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PretrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown pretraining config keys {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**data)


def packaged_config(preset: str) -> dict:
    """The packaged defaults of ``preset`` as a dict."""
    path = resources.files("mt2") / "configs" / f"{preset}.yaml"
    if not path.is_file():
        names = sorted(p.name.removesuffix(".yaml") for p in (resources.files("mt2") / "configs").iterdir() if p.name.endswith(".yaml"))
        raise ValueError(f"no packaged config for preset {preset!r}; choose one of {names}")
    return yaml.safe_load(path.read_text())


def overlay(data: dict, overrides: dict) -> dict:
    """``data`` with ``overrides`` laid over it: ``model`` and ``views`` mappings merged key by
    key (an override of ``model.layout`` keeps the other model keys), other keys replaced."""
    merged = dict(data)
    for key, value in overrides.items():
        if key in MERGED_KEYS:
            if not isinstance(value, dict):
                raise ValueError(f"{key}={value!r}: {key} overrides must be a mapping of field names to values")
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def load_config(preset: str | None = None, path: str | Path | None = None, **overrides) -> PretrainConfig:
    """Packaged defaults of ``preset`` (else the file's ``preset``, else ``mt2-mini``), overlaid by
    the YAML file ``path``, then by the ``overrides`` that are not ``None``.

    ``model`` and ``views`` mappings are merged key by key; other keys are replaced.
    """
    user = (yaml.safe_load(Path(path).read_text()) or {}) if path else {}
    if not isinstance(user, dict):
        raise ValueError(f"{path}: a pretraining config must be a YAML mapping")
    user.pop("run", None)  # a saved config.yaml may seed a new run; its run record is not a setting
    name = preset or user.get("preset") or "mt2-mini"
    data = packaged_config(name)
    for layer in (user, {k: v for k, v in overrides.items() if v is not None}):
        data = overlay(data, layer)
    data["preset"] = name
    return PretrainConfig.from_dict(data)


def save_config(config: PretrainConfig, path: str | Path, **record) -> None:
    """Write ``config`` as YAML, with ``record`` (package version, data hash, ...) under ``run``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump({**config.to_dict(), "run": record}, sort_keys=False))
    tmp.replace(path)


def read_saved_config(path: str | Path) -> tuple[PretrainConfig, dict]:
    """The configuration and the ``run`` record of a saved ``config.yaml``."""
    data = yaml.safe_load(Path(path).read_text())
    record = data.pop("run", {})
    return PretrainConfig.from_dict(data), record
