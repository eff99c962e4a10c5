"""The MT2 models that ``mt2 perf`` times: each a preset with model overrides (one row each)."""
from __future__ import annotations

from dataclasses import dataclass, field

from mt2.frontend import DEFAULT_BACKEND
from mt2.inference import Encoder
from mt2.model import build_model, make_config


@dataclass(frozen=True)
class ModelSpec:
    """An MT2 model to time: ``build_model(preset, "mt2", **overrides)``; in the training
    section, the packaged pretraining config of ``preset`` with ``model: overrides``."""

    name: str
    preset: str
    overrides: dict = field(default_factory=dict)
    description: str = ""

    def encoder(self, backend: str = DEFAULT_BACKEND) -> Encoder:
        """A randomly initialised encoder (weights do not change the cost) with CQT ``backend``."""
        return Encoder(build_model(self.preset, "mt2", **self.overrides), backend=backend)


#: The shape of the shipped weights (the recipe, docs/recipe.md).
RECIPE_PRESET = "mt2-mini"


def _dense(preset: str) -> ModelSpec:
    return ModelSpec(f"{preset} dense", preset, {"pc_basis": "dense"}, "the same model with dense 12c x 12c' maps (the reference implementation)")


def model_specs(preset: str) -> list[ModelSpec]:
    """The shapes of ``preset`` worth timing: the preset itself (Fourier basis), the same with
    dense maps, the plain layout, the other token rate (4 frames per token for a 1-frame preset,
    else 1), and the shipped recipe's shape when ``preset`` is another."""
    shape = make_config(preset)
    rate, other = shape.frames_per_token, (1 if shape.frames_per_token == 4 else 4)
    specs = [
        ModelSpec(preset, preset, {}, f"the preset (mt2.model.PRESETS): {shape.layout} layout ({shape.pc_basis} basis), {rate} frame(s) per token"),
        _dense(preset),
        ModelSpec(f"{preset} plain", preset, {"layout": "plain"}, f"plain layout (the paper's ViT-1D), {rate} frame(s) per token"),
        ModelSpec(f"{preset} {other} fpt", preset, {"frames_per_token": other}, f"{shape.layout} layout, {other} frame(s) per token"),
    ]
    if preset != RECIPE_PRESET:
        specs.append(ModelSpec(RECIPE_PRESET, RECIPE_PRESET, {}, "the shipped weights' shape (the recipe)"))
    return specs


def training_specs(presets: tuple[str, ...]) -> list[ModelSpec]:
    """The rows of the training section: each preset's packaged recipe as it is (Fourier
    basis), and the same recipe with dense maps, side by side."""
    return [spec for preset in presets for spec in (ModelSpec(preset, preset, {}, f"packaged recipe of {preset}"), _dense(preset))]
