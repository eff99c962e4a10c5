"""The MT2 network: configuration, presets, ViT-1D with K class tokens, heads."""
from mt2.model.config import LAYOUTS, PC_BASES, PRESETS, VARIANTS, ModelConfig, make_config
from mt2.model.vit import MT2Model, ModelOutput, count_parameters


def build_model(preset: str = "mt2-mini", variant: str = "mt2", **overrides) -> MT2Model:
    """A freshly initialised model: ``build_model("mt2-tiny", "mt2")``.

    ``variant`` is ``mt2`` (two class tokens: equivariant + contrastive), ``contrastive`` or
    ``equivariant`` (one token); ``overrides`` replace any :class:`ModelConfig` field.
    """
    return MT2Model(make_config(preset, variant, **overrides))


__all__ = [
    "LAYOUTS", "PC_BASES", "PRESETS", "VARIANTS", "ModelConfig", "make_config", "MT2Model", "ModelOutput",
    "build_model", "count_parameters",
]
