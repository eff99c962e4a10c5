"""The MT2 models that ``mt2 perf`` times: one preset in the layouts worth comparing."""
from __future__ import annotations

from dataclasses import dataclass, field

from mt2.frontend import CQTFrontend
from mt2.inference import Encoder
from mt2.model import build_model
from mt2.study import BASE


@dataclass(frozen=True)
class ModelSpec:
    """An MT2 model to time: ``build_model(preset, "mt2", **overrides)``."""

    name: str
    preset: str
    overrides: dict = field(default_factory=dict)
    description: str = ""

    def encoder(self, backend: str = "nnaudio") -> Encoder:
        """A randomly initialised encoder (weights do not change the cost) with CQT ``backend``."""
        encoder = Encoder(build_model(self.preset, "mt2", **self.overrides))
        encoder.frontend = CQTFrontend(compression=encoder.compression, backend=backend)
        return encoder


def model_specs(preset: str) -> list[ModelSpec]:
    """The layouts of ``preset`` worth timing: its default, the plain layout, and the training recipe."""
    return [
        ModelSpec(preset, preset, {}, "preset default: pitch-class layout (dense maps), 1 frame per token"),
        ModelSpec(f"{preset} plain", preset, {"layout": "plain"}, "plain layout (the paper's ViT-1D), 1 frame per token"),
        ModelSpec(f"{preset} recipe", preset, dict(BASE.model), "mt2.study.BASE (the packaged training config): pitch-class, 4 frames per token"),
    ]
