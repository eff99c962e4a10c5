"""ViT-1D with K class tokens (DESIGN.md section 2), in the ``plain`` or ``pitch-class`` layout.

Input: a CQT window ``(B, bins, T)`` (84 bins by default, see :mod:`mt2.frontend`). Frames
become tokens (``frames_per_token`` frames each), K learnable class tokens are prepended at
positions ``0..K-1``, and pre-norm transformer blocks follow. Every token is a vector of
``config.token_dim`` values. Class token ``i`` serves ``config.roles[i]``: ``equivariant``
(12 key-signature logits through :attr:`MT2Model.equivariant_head`) or ``contrastive``
(a projection for NT-Xent through :attr:`MT2Model.contrastive_head`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mt2.model.config import ModelConfig
from mt2.model.masked import MaskedPrediction
from mt2.model.pitch_class import (
    PITCH_CLASSES,
    CirculantLinear,
    FoldedEmbedding,
    PitchClassAttention,
    PitchClassLayerNorm,
    PitchClassMLP,
    invariant_dim,
    invariant_features,
)


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, width)`` with ``scaled_dot_product_attention``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Sequential):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


class PlainBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PitchClassBlock(nn.Module):
    """Two-stream pre-norm block over tokens ``[e (12 x c) | u (d)]``.

    The equivariant stream ``e`` is a transformer block made of roll-commuting maps. The
    invariant stream ``u`` is an ordinary block that also receives a linear map of the
    roll-invariant features of ``norm(e)``. Nothing flows from ``u`` into ``e``, so ``e``
    (and the key logits read from it) is exactly equivariant to a roll of its input.
    """

    def __init__(self, channels: int, invariant_width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.channels = channels
        self.eq_norm1 = PitchClassLayerNorm(channels)
        self.eq_attn = PitchClassAttention(channels, heads)
        self.eq_norm2 = PitchClassLayerNorm(channels)
        self.eq_mlp = PitchClassMLP(channels, int(channels * mlp_ratio))
        self.inject = nn.Linear(invariant_dim(channels), invariant_width)
        self.inv = PlainBlock(invariant_width, heads, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, u = split_tokens(x, self.channels)
        normed = self.eq_norm1(e)
        e = e + self.eq_attn(normed)
        e = e + self.eq_mlp(self.eq_norm2(e))
        u = self.inv(u + self.inject(invariant_features(normed)))
        return join_tokens(e, u)


def split_tokens(x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., 12 c + d)`` -> equivariant part ``(..., 12, c)`` and invariant part ``(..., d)``."""
    eq_dim = PITCH_CLASSES * channels
    return x[..., :eq_dim].unflatten(-1, (PITCH_CLASSES, channels)), x[..., eq_dim:]


def join_tokens(e: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return torch.cat([e.flatten(-2), u], dim=-1)


class PlainEmbedding(nn.Module):
    """Patches of ``frames_per_token`` frames -> ``width`` (``linear``), plus an octave-folded
    frequency convolution projected to ``width`` when ``embedding='freq'``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Linear(config.input_bins * config.frames_per_token, config.width)
        self.freq = None
        if config.embedding == "freq":
            self.freq = FoldedEmbedding(config.freq_channels, config.freq_kernel)
            self.freq_proj = nn.Linear(PITCH_CLASSES * config.freq_channels, config.width)
        self.frames_per_token = config.frames_per_token

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (B, T, bins)
        b, t, bins = frames.shape
        patches = frames.reshape(b, t // self.frames_per_token, self.frames_per_token * bins)
        tokens = self.proj(patches)
        if self.freq is not None:
            pooled = pool_frames(frames, self.frames_per_token)
            tokens = tokens + self.freq_proj(self.freq(pooled).flatten(-2))
        return tokens


class PitchClassEmbedding(nn.Module):
    """Frames -> ``[e (12 x c) | u (d)]`` tokens.

    ``e`` = circulant map of the octave-folded frequency convolution (equivariant);
    ``u`` = linear map of its roll-invariant features, plus, with ``register='linear'``,
    a linear map of the raw bins (register and timbre; invariant stream only).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fold = FoldedEmbedding(config.freq_channels, config.freq_kernel)
        self.eq_proj = CirculantLinear(config.freq_channels, config.pc_channels)
        self.inv_proj = nn.Linear(invariant_dim(config.freq_channels), config.invariant_width)
        self.register_proj = None
        if config.register == "linear":
            self.register_proj = nn.Linear(config.input_bins, config.invariant_width)
        self.frames_per_token = config.frames_per_token

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        pooled = pool_frames(frames, self.frames_per_token)
        folded = self.fold(pooled)
        u = self.inv_proj(invariant_features(folded))
        if self.register_proj is not None:
            u = u + self.register_proj(pooled)
        return join_tokens(self.eq_proj(folded), u)


def pool_frames(frames: torch.Tensor, frames_per_token: int) -> torch.Tensor:
    """Average groups of ``frames_per_token`` consecutive frames: ``(B, T, F) -> (B, T / n, F)``."""
    b, t, bins = frames.shape
    return frames.view(b, t // frames_per_token, frames_per_token, bins).mean(dim=2)


class EquivariantHead(nn.Module):
    """Class token -> 12 logits (softmax gives the key-signature profile).

    ``plain``: a dense ``Linear(width, 12)``. ``pitch-class``: one ``Linear(c, 1)`` shared by
    the 12 pitch classes of the equivariant part, so the logits roll with the input.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layout = config.layout
        self.channels = config.pc_channels
        in_features = config.width if config.layout == "plain" else config.pc_channels
        out_features = PITCH_CLASSES if config.layout == "plain" else 1
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        if self.layout == "plain":
            return self.linear(token)
        e, _ = split_tokens(token, self.channels)
        return self.linear(e).squeeze(-1)


class ContrastiveHead(nn.Module):
    """Class token -> projection for NT-Xent: ``Linear -> GELU -> Linear``.

    In the ``pitch-class`` layout the head sees only roll-invariant values: the invariant
    part ``u`` and :func:`invariant_features` of the equivariant part.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layout = config.layout
        self.channels = config.pc_channels
        if config.layout == "plain":
            in_features = config.width
        else:
            in_features = config.invariant_width + invariant_dim(config.pc_channels)
        self.mlp = nn.Sequential(
            nn.Linear(in_features, config.projection_hidden),
            nn.GELU(),
            nn.Linear(config.projection_hidden, config.projection_dim),
        )

    def invariant_input(self, token: torch.Tensor) -> torch.Tensor:
        if self.layout == "plain":
            return token
        e, u = split_tokens(token, self.channels)
        return torch.cat([u, invariant_features(e)], dim=-1)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.invariant_input(token))


@dataclass
class ModelOutput:
    """What :meth:`MT2Model.forward` returns.

    ``tokens``: ``(B, K + T', D)`` after the final norm; ``key_logits``: ``(B, 12)`` from the
    equivariant class token or ``None``; ``projection``: ``(B, P)`` from the contrastive class
    token or ``None``.
    """

    tokens: torch.Tensor
    key_logits: torch.Tensor | None
    projection: torch.Tensor | None


class MT2Model(nn.Module):
    """ViT-1D with ``K = len(config.roles)`` class tokens; see the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.layout == "plain":
            self.embed = PlainEmbedding(c)
            pos_dim, cls_dim = c.width, c.width
            self.blocks = nn.ModuleList(PlainBlock(c.width, c.heads, c.mlp_ratio) for _ in range(c.depth))
            self.norm = nn.LayerNorm(c.width, eps=1e-6)
        else:
            self.embed = PitchClassEmbedding(c)
            pos_dim = cls_dim = c.pc_channels + c.invariant_width  # per-channel, broadcast over 12
            self.blocks = nn.ModuleList(
                PitchClassBlock(c.pc_channels, c.invariant_width, c.heads, c.mlp_ratio) for _ in range(c.depth)
            )
            self.eq_norm = PitchClassLayerNorm(c.pc_channels)
            self.inv_norm = nn.LayerNorm(c.invariant_width, eps=1e-6)
        # Class tokens start at the scale of the frame tokens and apart from each other, so
        # that they stay distinct (DESIGN.md section 3: small tokens plus a shared frame
        # mean made two class tokens identical).
        self.class_tokens = nn.Parameter(torch.randn(c.num_class_tokens, cls_dim))
        self.pos_embed = nn.Parameter(torch.randn(c.max_tokens // c.frames_per_token, pos_dim) * 0.02)
        self.equivariant_head = EquivariantHead(c) if "equivariant" in c.roles else None
        self.contrastive_head = ContrastiveHead(c) if "contrastive" in c.roles else None
        self.masked_prediction = MaskedPrediction(c) if "masked" in c.roles else None

    # -- token bookkeeping -------------------------------------------------------------
    @property
    def num_prefix_tokens(self) -> int:
        return self.config.num_class_tokens

    def role_index(self, role: str) -> int:
        """Position of the class token serving ``role``."""
        if role not in self.config.roles:
            raise ValueError(f"this {self.config.roles} model has no {role!r} class token")
        return self.config.roles.index(role)

    def _expand(self, per_channel: torch.Tensor) -> torch.Tensor:
        """Per-channel vectors ``(..., c + d)`` -> full tokens ``(..., 12 c + d)`` (pitch-class layout)."""
        if self.config.layout == "plain":
            return per_channel
        c = self.config.pc_channels
        e = per_channel[..., :c].unsqueeze(-2).expand(*per_channel.shape[:-1], PITCH_CLASSES, c)
        return join_tokens(e, per_channel[..., c:])

    def _positions(self, n: int) -> torch.Tensor:
        pos = self.pos_embed
        if n != pos.shape[0]:
            pos = F.interpolate(pos.T.unsqueeze(0), size=n, mode="linear", align_corners=False)[0].T
        return self._expand(pos)

    def _check_input(self, cqt: torch.Tensor) -> None:
        c = self.config
        if cqt.dim() != 3 or cqt.shape[1] != c.input_bins:
            raise ValueError(
                f"expected a CQT window of shape (batch, {c.input_bins}, frames), got {tuple(cqt.shape)}; "
                "crop the frontend output with mt2.frontend.crop"
            )
        if cqt.shape[2] < c.frames_per_token:
            raise ValueError(f"need at least {c.frames_per_token} frames, got {cqt.shape[2]}")

    def tokenize(self, cqt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """CQT window ``(B, bins, T)`` -> class + frame tokens ``(B, K + T', D)`` before the blocks.

        Trailing frames that do not fill a token are dropped (``T' = T // frames_per_token``).
        ``mask`` ``(B, T')``: frame tokens replaced by the mask embedding (``masked`` variant).
        """
        self._check_input(cqt)
        frames = cqt.transpose(1, 2)
        t = frames.shape[1] // self.config.frames_per_token * self.config.frames_per_token
        tokens = self.embed(frames[:, :t].contiguous())
        if mask is not None:
            if self.masked_prediction is None:
                raise ValueError(f"a mask needs the masked variant's mask embedding; this model has class tokens {self.config.roles}")
            tokens = torch.where(mask.unsqueeze(-1), self._expand(self.masked_prediction.mask_embedding).to(tokens.dtype), tokens)
        tokens = tokens + self._positions(tokens.shape[1])
        cls = self._expand(self.class_tokens).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        if self.config.class_token_mean:
            cls = cls + tokens.mean(dim=1, keepdim=True)
        return torch.cat([cls, tokens], dim=1)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.layout == "plain":
            return self.norm(x)
        e, u = split_tokens(x, self.config.pc_channels)
        return join_tokens(self.eq_norm(e), self.inv_norm(u))

    # -- features ----------------------------------------------------------------------
    def forward_features(self, cqt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """CQT window -> normalised tokens ``(B, K + T', D)``: class tokens first (``mask``: see :meth:`tokenize`)."""
        x = self.tokenize(cqt, mask)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward_intermediates(self, cqt: torch.Tensor, indices: list[int] | int | None = None, norm: bool = True) -> list[torch.Tensor]:
        """Tokens after the blocks in ``indices`` (negative counts from the end; an int ``n``
        means the last ``n`` blocks; ``None`` all), each through the final norm when ``norm``."""
        depth = len(self.blocks)
        if indices is None:
            wanted = list(range(depth))
        elif isinstance(indices, int):
            wanted = list(range(depth - indices, depth))
        else:
            wanted = [i % depth if -depth <= i < depth else _bad_index(i, depth) for i in indices]
        x = self.tokenize(cqt)
        outputs = {}
        for i, block in enumerate(self.blocks[: max(wanted) + 1]):
            x = block(x)
            if i in wanted:
                outputs[i] = self.final_norm(x) if norm else x
        return [outputs[i] for i in wanted]

    def forward(self, cqt: torch.Tensor) -> ModelOutput:
        tokens = self.forward_features(cqt)
        key_logits = projection = None
        if self.equivariant_head is not None:
            key_logits = self.equivariant_head(tokens[:, self.role_index("equivariant")])
        if self.contrastive_head is not None:
            projection = self.contrastive_head(tokens[:, self.role_index("contrastive")])
        return ModelOutput(tokens=tokens, key_logits=key_logits, projection=projection)


def _bad_index(index: int, depth: int) -> int:
    raise ValueError(f"layer index {index} is out of range for a model with {depth} blocks")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
