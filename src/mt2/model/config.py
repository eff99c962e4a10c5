"""Model configuration, named presets and the three variants (docs/design.md section 2)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mt2.frontend import WINDOW_BINS, WINDOW_FRAMES

LAYOUTS = ("plain", "pitch-class")
PC_BASES = ("fourier", "dense")
EMBEDDINGS = ("linear", "freq")
REGISTERS = ("none", "linear")
ROLES = ("equivariant", "contrastive", "masked")

#: Class-token roles of each variant; everything else is identical between variants.
#: ``masked`` (MERT's objective, :mod:`mt2.model.masked`) keeps one class token that no loss
#: reads (a register the frames attend to); its readout is the frame tokens' mean.
VARIANTS: dict[str, tuple[str, ...]] = {
    "mt2": ("equivariant", "contrastive"),
    "contrastive": ("contrastive",),
    "equivariant": ("equivariant",),
    "masked": ("masked",),
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved as JSON beside the weights.

    The defaults are the shipped recipe's two-token model, ``make_config("mt2-mini", "mt2")``
    (tested); :func:`make_config` is how a preset and a variant are built.

    Layouts (docs/design.md section 2):

    * ``plain``: the paper's ViT-1D; a token is a ``width``-vector, every map is dense.
    * ``pitch-class``: a token is ``12 x pc_channels`` values (the equivariant stream, every
      map commutes with a roll of the 12 pitch-class axis) followed by ``invariant_width``
      values (the invariant stream). The equivariant stream feeds the invariant one with
      roll-invariant summaries; nothing flows back, so token 0 stays exactly equivariant.
      ``pc_basis`` is how the equivariant stream is computed, not what it computes:
      ``fourier`` (real Fourier basis of the 12 axis, about 6x fewer multiply-adds) or
      ``dense`` (every roll-commuting map as its dense expansion; the reference). Both give
      the same outputs from the same weights (:mod:`mt2.model.layout`).

    ``max_tokens`` counts **CQT frames**, not tokens: the longest input that the learned
    positions cover (default :data:`mt2.frontend.WINDOW_FRAMES`, one 4-s window). The model
    learns ``max_tokens // frames_per_token`` positions (31 at 4 frames per token) and
    interpolates them for other lengths; the encoder's window is the longest run of whole
    tokens inside ``max_tokens`` frames. The field keeps its name because every saved
    ``config.json`` (the shipped weights' included) stores it under that key, and a folder
    with an unknown key is refused: a rename would break every saved model folder.
    """

    layout: str = "pitch-class"
    roles: tuple[str, ...] = VARIANTS["mt2"]
    input_bins: int = WINDOW_BINS
    frames_per_token: int = 4
    max_tokens: int = WINDOW_FRAMES  # frames, not tokens (see above)
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    # plain layout
    width: int = 128
    embedding: str = "linear"
    freq_channels: int = 16
    freq_kernel: int = 7
    # pitch-class layout
    pc_channels: int = 16
    invariant_width: int = 64
    register: str = "linear"
    # stop gradients from the invariant stream and the contrastive head into the equivariant
    # stream: NT-Xent reads its roll-invariant summaries but does not train it (recipe lever)
    detach_summaries: bool = True
    pc_basis: str = "fourier"
    # class tokens: add the mean of the frame tokens to each (ViT-1D); off by default
    class_token_mean: bool = False
    # heads
    projection_dim: int = 128
    projection_hidden: int = 256
    # masked variant: k-means codebook size (classes of the masked-prediction head)
    codebook_size: int = 100

    def __post_init__(self) -> None:
        self.roles = tuple(self.roles)
        checks = [
            (self.layout in LAYOUTS, f"layout={self.layout!r} is not one of {LAYOUTS}"),
            (self.embedding in EMBEDDINGS, f"embedding={self.embedding!r} is not one of {EMBEDDINGS}"),
            (self.pc_basis in PC_BASES, f"pc_basis={self.pc_basis!r} is not one of {PC_BASES}: use 'fourier' (fast) or 'dense' (reference)"),
            (self.register in REGISTERS, f"register={self.register!r} is not one of {REGISTERS}"),
            (len(self.roles) >= 1 and all(r in ROLES for r in self.roles), f"roles={self.roles} must be taken from {ROLES}"),
            ("masked" not in self.roles or self.roles == ("masked",), f"roles={self.roles}: 'masked' is a variant of its own, roles=('masked',)"),
            (self.codebook_size >= 2, f"codebook_size={self.codebook_size} must be >= 2"),
            (self.frames_per_token in (1, 2, 4), f"frames_per_token={self.frames_per_token} must be 1, 2 or 4"),
            (self.input_bins % 12 == 0, f"input_bins={self.input_bins} must be a multiple of 12"),
            (self.depth >= 1, f"depth={self.depth} must be >= 1"),
        ]
        if self.layout == "plain":
            checks.append((self.width % self.heads == 0, f"width={self.width} must be divisible by heads={self.heads}"))
        else:
            checks.append((self.pc_channels % self.heads == 0, f"pc_channels={self.pc_channels} must be divisible by heads={self.heads}"))
            checks.append((self.invariant_width % self.heads == 0, f"invariant_width={self.invariant_width} must be divisible by heads={self.heads}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def num_class_tokens(self) -> int:
        return len(self.roles)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**data)


#: Named shapes, the one place of each recipe's model. ``mt2-tiny``: the paper's scale (ViT-Tiny
#: backbone, about MERT-95M / 18 parameters), pitch-class layout, 4 frames per token (the shipped
#: ``mt2/weights/mt2-tiny``: the paper's 1 frame per token, ``frames_per_token=1``, costs about 4x
#: per training step, more than a 2-core CPU session affords; docs/perf). ``mt2-mini``: the shipped model (``mt2/weights/mt2``, docs/recipe.md): pitch-class
#: layout, 4 frames per token; it trains on a laptop CPU and serves the tests. Both detach the
#: equivariant stream's summaries from NT-Xent in the two-token model (recipe round 2,
#: docs/recipe.md; :data:`TWO_TOKEN_ONLY`).
PRESETS: dict[str, dict] = {
    "mt2-tiny": dict(layout="pitch-class", frames_per_token=4, depth=12, heads=3, width=192, mlp_ratio=4.0, pc_channels=48,
                     invariant_width=96, detach_summaries=True),
    "mt2-mini": dict(layout="pitch-class", frames_per_token=4, depth=4, heads=4, width=128, mlp_ratio=4.0, pc_channels=16,
                     invariant_width=64, detach_summaries=True),
}

#: Preset fields that apply to the two-token model only. ``detach_summaries`` keeps NT-Xent from
#: training the equivariant stream that CPSD trains; a single-token variant has one objective,
#: and with the contrastive one alone a detached equivariant stream would never train.
TWO_TOKEN_ONLY = ("detach_summaries",)


def make_config(preset: str = "mt2-mini", variant: str = "mt2", **overrides) -> ModelConfig:
    """The configuration of ``preset`` for ``variant``, with keyword overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    shape = dict(PRESETS[preset])
    if variant != "mt2":
        shape.update({k: False for k in TWO_TOKEN_ONLY})  # off for one token (see TWO_TOKEN_ONLY)
    values = {**shape, "roles": VARIANTS[variant], **overrides}
    return ModelConfig(**values)
