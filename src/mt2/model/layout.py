"""Token layouts (docs/design.md section 2): what a token is, as one object per model.

:class:`MT2Model` asks its layout for everything that depends on what a token is, and
never branches on ``config.layout`` itself:

* ``embedding()``, ``block()``, ``final_norm_modules()``: the modules (registered on the
  model under the names of the shipped checkpoints);
* ``per_channel_dim``: length of the class-token and positional vectors;
  ``expand(v)``: such vectors ``(..., per_channel_dim)`` -> full tokens, in the working basis;
* ``final_norm(x)``: the final norm, in the working basis; ``output(x)``: working basis ->
  output tokens ``(..., token_dim)``, what :meth:`MT2Model.forward_features` returns;
* on output tokens: ``equivariant_view(tokens)``, the key head's input, and
  ``invariant_view(tokens)``, the contrastive head's input; ``key_head_features`` and
  ``invariant_dim`` size the heads.

Working basis. ``plain`` has one. ``pitch-class`` tokens are ``[e (12 x c) | u (d)]``; between
embedding and output, ``e`` is held in the coordinates of ``config.pc_basis``: ``fourier``
(:mod:`mt2.model.fourier`, the default, about 6x fewer multiply-adds) or ``dense`` (pitch
classes, every roll-commuting map as its dense expansion: the reference). Output tokens
are in pitch classes in both, so the two bases give the same outputs and load the same
weights.
"""
from __future__ import annotations

import torch
from torch import nn

from mt2.model.config import ModelConfig
from mt2.model.fourier import FourierBasis
from mt2.model.pitch_class import (
    PITCH_CLASSES,
    CirculantLinear,
    DenseBasis,
    FoldedEmbedding,
    PitchClassAttention,
    PitchClassLayerNorm,
    PitchClassMLP,
    invariant_dim,
)
from mt2.model.plain import PlainBlock, PlainEmbedding, pool_frames

BASES = {"dense": DenseBasis(), "fourier": FourierBasis()}


def split_tokens(x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., 12 c + d)`` -> equivariant part ``(..., 12, c)`` and invariant part ``(..., d)``."""
    eq_dim = PITCH_CLASSES * channels
    return x[..., :eq_dim].unflatten(-1, (PITCH_CLASSES, channels)), x[..., eq_dim:]


def join_tokens(e: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_tokens`."""
    return torch.cat([e.flatten(-2), u], dim=-1)


class PlainLayout:
    """The paper's ViT-1D: a token is a ``width``-vector; every map is dense."""

    #: No 12 pitch-class axis in a token: nothing to roll (:meth:`roll`), no mode probe.
    has_pitch_classes = False

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.token_dim = self.token_dim_of(config)
        self.per_channel_dim = config.width
        self.invariant_dim = config.width
        self.key_head_features = (config.width, PITCH_CLASSES)
        self._norm: nn.Module | None = None

    @staticmethod
    def token_dim_of(config: ModelConfig) -> int:
        """Length of one token vector (class or frame): ``width``."""
        return config.width

    def embedding(self) -> nn.Module:
        return PlainEmbedding(self.config)

    def block(self) -> nn.Module:
        return PlainBlock(self.config.width, self.config.heads, self.config.mlp_ratio)

    def final_norm_modules(self) -> dict[str, nn.Module]:
        self._norm = nn.LayerNorm(self.config.width, eps=1e-6)
        return {"norm": self._norm}

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self._norm(x)

    def expand(self, per_channel: torch.Tensor) -> torch.Tensor:
        return per_channel

    def roll(self, tokens: torch.Tensor, shift: int) -> torch.Tensor:
        """No pitch-class axis to roll in this layout: always a ValueError."""
        raise ValueError("rolling a token needs the pitch-class layout; this model's layout is 'plain'")

    def output(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def equivariant_view(self, tokens: torch.Tensor) -> torch.Tensor:
        """The key head's input: the token itself (no pitch-class axis)."""
        return tokens

    def invariant_view(self, tokens: torch.Tensor) -> torch.Tensor:
        """The contrastive head's input: the token itself."""
        return tokens


class PitchClassLayout:
    """Tokens ``[e (12 x c) | u (d)]`` (:class:`PitchClassBlock`), ``e`` held in the
    coordinates of ``config.pc_basis`` between embedding and output."""

    #: Tokens hold a 12 pitch-class axis that a transposition rolls (:meth:`roll`).
    has_pitch_classes = True

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.token_dim = self.token_dim_of(config)
        self.basis = BASES[config.pc_basis]
        self.channels = config.pc_channels
        self.per_channel_dim = config.pc_channels + config.invariant_width
        self.invariant_dim = config.invariant_width + invariant_dim(config.pc_channels)
        self.key_head_features = (config.pc_channels, 1)
        self._norms: dict[str, nn.Module] = {}

    @staticmethod
    def token_dim_of(config: ModelConfig) -> int:
        """Length of one token vector (class or frame): ``12 pc_channels + invariant_width``."""
        return 12 * config.pc_channels + config.invariant_width

    def embedding(self) -> nn.Module:
        return PitchClassEmbedding(self.config, self.basis)

    def block(self) -> nn.Module:
        c = self.config
        return PitchClassBlock(c.pc_channels, c.invariant_width, c.heads, c.mlp_ratio, self.basis, c.detach_summaries)

    def final_norm_modules(self) -> dict[str, nn.Module]:
        self._norms = {"eq_norm": PitchClassLayerNorm(self.channels), "inv_norm": nn.LayerNorm(self.config.invariant_width, eps=1e-6)}
        return dict(self._norms)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        e, u = split_tokens(x, self.channels)
        return join_tokens(self.basis.norm(self._norms["eq_norm"], e), self._norms["inv_norm"](u))

    def expand(self, per_channel: torch.Tensor) -> torch.Tensor:
        """``[v_e (c) | v_u (d)]`` -> ``[v_e repeated over the 12 pitch classes | v_u]`` (working basis)."""
        c = self.channels
        return join_tokens(self.basis.broadcast(per_channel[..., :c]), per_channel[..., c:])

    def output(self, x: torch.Tensor) -> torch.Tensor:
        e, u = split_tokens(x, self.channels)
        return join_tokens(self.basis.to_pitch_class(e), u)

    def roll(self, tokens: torch.Tensor, shift: int) -> torch.Tensor:
        """Output tokens with the equivariant part rolled by ``shift`` pitch classes
        (``e'[q] = e[q - shift]``) and the invariant part unchanged: what a transposition by
        ``shift`` semitones does to a token of an exactly equivariant stream."""
        e, u = split_tokens(tokens, self.channels)
        return join_tokens(torch.roll(e, shift, dims=-2), u)

    def equivariant_view(self, tokens: torch.Tensor) -> torch.Tensor:
        """Output tokens ``(..., D)`` -> ``e`` ``(..., 12, c)`` in pitch classes: a roll of the
        input bins by ``k`` rolls it by ``k`` along the 12 axis."""
        return split_tokens(tokens, self.channels)[0]

    def invariant_view(self, tokens: torch.Tensor) -> torch.Tensor:
        """Output tokens ``(..., D)`` -> ``[u, invariant_features(e)]`` ``(..., d + 7 c)``; with
        ``detach_summaries`` no gradient flows back into ``e`` through it."""
        e, u = split_tokens(tokens, self.channels)
        return torch.cat([u, DenseBasis.invariant(_summarised(e, self.config.detach_summaries))], dim=-1)


LAYOUT_TYPES = {"plain": PlainLayout, "pitch-class": PitchClassLayout}


def make_layout(config: ModelConfig) -> PlainLayout | PitchClassLayout:
    """The layout object of ``config.layout`` (one per model: it holds its final norm)."""
    return LAYOUT_TYPES[config.layout](config)


def _summarised(e: torch.Tensor, detach: bool) -> torch.Tensor:
    """``e`` as the source of roll-invariant summaries for the invariant stream: detached when
    ``detach`` (``ModelConfig.detach_summaries``), so only the equivariant objective trains ``e``."""
    return e.detach() if detach else e


class PitchClassBlock(nn.Module):
    """Two-stream pre-norm block over tokens ``[e (12 x c) | u (d)]``, ``e`` in the coordinates
    of ``basis``.

    The equivariant stream ``e`` is a transformer block made of roll-commuting maps. The
    invariant stream ``u`` is an ordinary block that also receives a linear map of the
    roll-invariant features of ``norm(e)``. Nothing flows from ``u`` into ``e``, so ``e``
    (and the key logits read from it) is exactly equivariant to a roll of its input.
    """

    def __init__(self, channels: int, invariant_width: int, heads: int, mlp_ratio: float, basis, detach_summaries: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.basis = basis
        self.detach_summaries = detach_summaries
        self.eq_norm1 = PitchClassLayerNorm(channels)
        self.eq_attn = PitchClassAttention(channels, heads, basis)
        self.eq_norm2 = PitchClassLayerNorm(channels)
        self.eq_mlp = PitchClassMLP(channels, int(channels * mlp_ratio))
        self.inject = nn.Linear(invariant_dim(channels), invariant_width)
        self.inv = PlainBlock(invariant_width, heads, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, u = split_tokens(x, self.channels)
        normed = self.basis.norm(self.eq_norm1, e)
        e = e + self.eq_attn(normed)
        e = e + self.basis.mlp(self.eq_mlp, self.basis.norm(self.eq_norm2, e))
        u = self.inv(u + self.inject(self.basis.invariant(_summarised(normed, self.detach_summaries))))
        return join_tokens(e, u)


class PitchClassEmbedding(nn.Module):
    """Frames -> ``[e (12 x c) | u (d)]`` tokens, ``e`` in the coordinates of ``basis``.

    ``e`` = circulant map of the octave-folded frequency convolution (equivariant);
    ``u`` = linear map of its roll-invariant features, plus, with ``register='linear'``,
    a linear map of the raw bins (register and timbre; invariant stream only).
    """

    def __init__(self, config: ModelConfig, basis) -> None:
        super().__init__()
        self.basis = basis
        self.fold = FoldedEmbedding(config.freq_channels, config.freq_kernel)
        self.eq_proj = CirculantLinear(config.freq_channels, config.pc_channels)
        self.inv_proj = nn.Linear(invariant_dim(config.freq_channels), config.invariant_width)
        self.register_proj = None
        if config.register == "linear":
            self.register_proj = nn.Linear(config.input_bins, config.invariant_width)
        self.frames_per_token = config.frames_per_token
        self.detach_summaries = config.detach_summaries

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        pooled = pool_frames(frames, self.frames_per_token)
        folded = self.basis.from_pitch_class(self.fold(pooled))
        u = self.inv_proj(self.basis.invariant(_summarised(folded, self.detach_summaries)))
        if self.register_proj is not None:
            u = u + self.register_proj(pooled)
        return join_tokens(self.basis.linear(self.eq_proj, folded), u)
